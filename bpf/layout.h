/* SPDX-License-Identifier: GPL-2.0 */
#ifndef RW_LAYOUT_H
#define RW_LAYOUT_H

/* Puts a record type (RW_LAYOUT) or a named constant's enum (RW_ENUM) into the object's
 * BTF, which the Rust tests read to compare their mirrors (types only used through
 * pointers, and enums only used for their values, would not be there). build.rs compiles
 * a second object with RW_LAYOUT_BTF for those tests; the one the daemon embeds goes
 * without (~1 KB less per family in the binary). */
#ifdef RW_LAYOUT_BTF
#define RW_LAYOUT(tag) struct tag *rw_layout_##tag SEC(".layout")
#define RW_ENUM(tag) enum tag *rw_enum_##tag SEC(".layout")
#else
#define RW_LAYOUT(tag) _Static_assert(1, #tag)
#define RW_ENUM(tag) _Static_assert(1, #tag)
#endif

#endif
