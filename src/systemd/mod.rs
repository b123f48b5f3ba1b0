//! Living under systemd: the notify protocol (READY, STATUS, WATCHDOG, RELOADING,
//! STOPPING) and log lines with syslog priorities when stderr is a journal stream.
pub mod logging;
pub mod notify;
