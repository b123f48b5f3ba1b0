//! Which of a family's two objects this kernel runs (bpf/kernel.h): the one built for
//! 5.12 and later, or the 5.10 variant for kernels without atomic fetch-and-add (5.12) or
//! `bpf_loop` (5.17). Probed once, by asking the kernel to load a two-line program of each.
use libbpf_rs::libbpf_sys as sys;
use std::sync::OnceLock;

/// What the kernel lacks that the newer objects use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// `BPF_ATOMIC | BPF_FETCH` (5.12): the per-ring seq, compare-and-swap.
    pub fetch: bool,
    /// `bpf_loop` (5.17): path and cgroup walks of any depth.
    pub bpf_loop: bool,
}

/// What a family's programs use beyond 5.10 that no variant replaces: a family that does
/// not load names those this kernel lacks (`ringwarden check`). Only tls has such needs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    TaskBtf,
    ForEachMapElem,
    TaskPtRegs,
    AttachCookie,
    Loop,
    FindVma,
    Fetch,
}

impl Feature {
    /// Its name and the release that brought it.
    pub fn name(self) -> &'static str {
        match self {
            Feature::TaskBtf => "bpf_get_current_task_btf (5.11)",
            Feature::ForEachMapElem => "bpf_for_each_map_elem (5.13)",
            Feature::TaskPtRegs => "bpf_task_pt_regs (5.15)",
            Feature::AttachCookie => "bpf_get_attach_cookie in uprobes (5.15)",
            Feature::FindVma => "bpf_find_vma (5.17)",
            Feature::Loop => "bpf_loop (5.17)",
            Feature::Fetch => "atomic fetch-and-add (5.12)",
        }
    }

    /// Whether this kernel has it (probed, each at most once).
    pub fn here(self) -> bool {
        static TASK_BTF: OnceLock<bool> = OnceLock::new();
        static FOR_EACH: OnceLock<bool> = OnceLock::new();
        static PT_REGS: OnceLock<bool> = OnceLock::new();
        static COOKIE: OnceLock<bool> = OnceLock::new();
        static FIND_VMA: OnceLock<bool> = OnceLock::new();
        match self {
            Feature::TaskBtf => {
                *TASK_BTF.get_or_init(|| probe_helper(sys::BPF_FUNC_get_current_task_btf))
            }
            Feature::ForEachMapElem => {
                *FOR_EACH.get_or_init(|| probe_helper(sys::BPF_FUNC_for_each_map_elem))
            }
            Feature::TaskPtRegs => {
                *PT_REGS.get_or_init(|| probe_helper(sys::BPF_FUNC_task_pt_regs))
            }
            // Uprobe programs are of the kprobe type.
            Feature::AttachCookie => *COOKIE.get_or_init(|| {
                probe_helper_in(sys::BPF_PROG_TYPE_KPROBE, sys::BPF_FUNC_get_attach_cookie)
            }),
            Feature::FindVma => *FIND_VMA.get_or_init(|| probe_helper(sys::BPF_FUNC_find_vma)),
            Feature::Loop => Kernel::get().bpf_loop,
            Feature::Fetch => Kernel::get().fetch,
        }
    }
}

/// Of `needs`, what this kernel lacks, as `check` says it ("" when nothing).
pub fn lacking(needs: &[Feature]) -> String {
    let names: Vec<&str> = needs
        .iter()
        .filter(|f| !f.here())
        .map(|f| f.name())
        .collect();
    names.join(", ")
}

/// Whether hash maps must be preallocated: kernels before 6.1 (bpf_mem_alloc) warn when a
/// tracepoint or kprobe program uses a hash allocated at run time (WARN_ONCE, which taints
/// the kernel, and panics a host booted with panic_on_warn), so there every `BPF_F_NO_PREALLOC`
/// hash is created preallocated. Also wherever the 5.10 variants run (`variant`), so that
/// the suite exercises it. Asked once per object at start (the filter object's shared maps,
/// then each family's), each with its own variant choice; the kernel's side is cached.
pub fn prealloc_hashes(variant: bool) -> bool {
    static OLD: OnceLock<bool> = OnceLock::new();
    variant || *OLD.get_or_init(|| release().is_some_and(|v| v < (6, 1)))
}

/// The running kernel's version, major and minor (uname).
fn release() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = text.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `RINGWARDEN_KERNEL_VARIANT=5.10` loads the 5.10 variants on any kernel: a developer's
/// and the tests' knob, so the variant is exercised where the suite runs.
const FORCE: &str = "RINGWARDEN_KERNEL_VARIANT";

impl Kernel {
    /// This kernel, probed on first use.
    pub fn get() -> Kernel {
        static K: OnceLock<Kernel> = OnceLock::new();
        *K.get_or_init(|| Kernel {
            fetch: probe_fetch(),
            bpf_loop: probe_helper(sys::BPF_FUNC_loop),
        })
    }

    /// Whether the 5.10 variants run here, and why (the features missing, with the release
    /// that brought each), or `None` when the full objects run.
    pub fn variant_510(self) -> Option<String> {
        if std::env::var(FORCE).is_ok_and(|v| v == "5.10") {
            return Some(format!("{FORCE}=5.10"));
        }
        let missing: Vec<&str> = [(self.fetch, Feature::Fetch), (self.bpf_loop, Feature::Loop)]
            .into_iter()
            .filter(|&(has, _)| !has)
            .map(|(_, f)| f.name())
            .collect();
        (!missing.is_empty()).then(|| format!("this kernel has no {}", missing.join(", no ")))
    }
}

/// Whether the verifier takes `r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)`: 5.10 refuses
/// the fetch ("BPF_XADD uses reserved fields", EINVAL).
fn probe_fetch() -> bool {
    // code, dst | src << 4, off, imm: the instruction encoding of linux/bpf.h.
    const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
        code as u64
            | ((dst | src << 4) as u64) << 8
            | (off as u16 as u64) << 16
            | (imm as u32 as u64) << 32
    }
    const MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
    const STX_DW: u8 = 0x7b; // BPF_STX | BPF_MEM | BPF_DW
    const ATOMIC_DW: u8 = 0xdb; // BPF_STX | BPF_ATOMIC | BPF_DW
    const FETCH_ADD: i32 = 0x01; // BPF_ADD | BPF_FETCH
    const EXIT: u8 = 0x95;
    let prog: [u64; 6] = [
        insn(MOV64_IMM, 1, 0, 0, 0),
        insn(STX_DW, 10, 1, -8, 0),
        insn(MOV64_IMM, 1, 0, 0, 1),
        insn(ATOMIC_DW, 10, 1, -8, FETCH_ADD),
        insn(MOV64_IMM, 0, 0, 0, 0),
        insn(EXIT, 0, 0, 0, 0),
    ];
    // SAFETY: six 8-byte instructions in struct bpf_insn's layout, a NUL-terminated
    // license; no options. The fd returned, if any, is closed here.
    let fd = unsafe {
        sys::bpf_prog_load(
            sys::BPF_PROG_TYPE_SOCKET_FILTER,
            std::ptr::null(),
            c"GPL".as_ptr(),
            prog.as_ptr().cast(),
            prog.len() as _,
            std::ptr::null_mut(),
        )
    };
    if fd >= 0 {
        // SAFETY: a fd the call above opened and nothing else holds.
        unsafe { libc::close(fd) };
    }
    // Only the verifier's refusal says the kernel lacks it: any other failure (EPERM
    // without CAP_BPF, say) keeps the full objects, whose own load then tells.
    fd != -libc::EINVAL
}

/// Whether a raw tracepoint program may call `helper`.
fn probe_helper(helper: sys::bpf_func_id) -> bool {
    probe_helper_in(sys::BPF_PROG_TYPE_RAW_TRACEPOINT, helper)
}

/// Whether a program of type `prog` may call `helper`.
fn probe_helper_in(prog: sys::bpf_prog_type, helper: sys::bpf_func_id) -> bool {
    // SAFETY: no options; libbpf loads and closes a probe program.
    unsafe { sys::libbpf_probe_bpf_helper(prog, helper, std::ptr::null()) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine the suite runs on (6.18) has all; run as root, as the suite is.
    #[test]
    fn this_kernel_has_every_feature() {
        use Feature::*;
        let all = [
            TaskBtf,
            ForEachMapElem,
            TaskPtRegs,
            AttachCookie,
            Loop,
            FindVma,
            Fetch,
        ];
        assert_eq!(lacking(&all), "");
    }

    #[test]
    fn this_kernel_needs_no_preallocated_hashes() {
        assert_eq!(release().map(|v| v >= (6, 1)), Some(true));
        assert!(!prealloc_hashes(false));
        assert!(prealloc_hashes(true));
    }

    #[test]
    fn this_kernel_runs_the_full_objects() {
        let k = Kernel::get();
        assert_eq!(
            k,
            Kernel {
                fetch: true,
                bpf_loop: true
            }
        );
    }
}
