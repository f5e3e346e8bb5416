//! An idle node's resident set: the binary's pages touched only at start-up given back.
//!
//! Most of an idle node's RSS is not memory it allocated (~0.6 MiB) but pages of its own
//! binary: everything start-up ran (argument parsing, configuration, the runtime and the
//! faces being built), and, around each page touched, the neighbours the kernel maps with it
//! (fault-around, 64 KiB). Once the node runs, it uses a small part of that code: a probe
//! round, a datagram decoded, a timer. So after start-up the node tells the kernel that its
//! code is read at random (no fault-around) and that the pages mapped so far may go; those
//! the node still runs come straight back from the page cache at their next use, the others
//! stay out. Nothing is lost or copied: these pages are clean and file-backed, so giving one
//! back only unmaps it (the kernel would reclaim them under pressure anyway).

/// What was given back: mappings advised and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub mappings: usize,
    pub bytes: usize,
    /// Of `bytes`, those of clean mappings: unmapped only, left in the page cache.
    pub clean_bytes: usize,
}

/// Advise every mapping of this process's own executable as read at random, and give back
/// what it has mapped so far: whatever of it was never written (code, read-only data: dropping
/// a page only unmaps it) always; a mapping with a written page only where the kernel finds
/// it unshared (page-out). Best effort: without `/proc`, or on a kernel without
/// `MADV_PAGEOUT` (before 5.4), less or nothing changes.
///
/// Never inlined: it marks where start-up ends for the profile that orders the binary's code
/// (`scripts/hot-code.py`).
#[inline(never)]
pub fn trim_startup_pages() -> Trimmed {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return Trimmed::default();
    };
    // smaps, not maps: it says whether any page of a mapping was ever written (`Anonymous`).
    let Ok(maps) = std::fs::read_to_string("/proc/self/smaps") else {
        return Trimmed::default();
    };
    let mut trimmed = Trimmed::default();
    for mapping in own_mappings(&maps, &exe) {
        use rustix::mm::{madvise, Advice};
        let addr = mapping.start as *mut std::ffi::c_void;
        // A clean mapping is only unmapped: its pages stay in the page cache for the next
        // process (page-out would evict every page no other process maps, and each node started
        // after this one read them from disk again: 448 KiB a start, issue 17's join). Code is
        // dropped even where other processes map the same pages (several nodes on one host),
        // which page-out would skip. Anything writable, or written once and then protected
        // (relocated read-only data), is only paged out: dropping a private page that was ever
        // written would bring back the file's bytes in its place.
        let give_back = if mapping.clean {
            Advice::LinuxDontNeed
        } else {
            Advice::LinuxPageOut
        };
        // SAFETY: `addr..addr + len` is a whole mapping of our executable, as the kernel lists
        // it now (nothing unmaps it while we run). MADV_RANDOM only turns off fault-around and
        // read-ahead. MADV_DONTNEED is used on clean mappings only: private file mappings, not
        // writable, with no page ever written (no anonymous page: the loader relocates some
        // data, and the kernel says which), so their pages read back the same
        // bytes from the file at their next use. MADV_PAGEOUT
        // never changes contents (dirty or anonymous pages are written out or left). No
        // reference into the range sees different bytes.
        #[allow(unsafe_code)]
        let advised = unsafe {
            madvise(addr, mapping.len, Advice::Random).is_ok()
                && madvise(addr, mapping.len, give_back).is_ok()
        };
        if advised {
            trimmed.mappings = trimmed.mappings.saturating_add(1);
            trimmed.bytes = trimmed.bytes.saturating_add(mapping.len);
            if mapping.clean {
                trimmed.clean_bytes = trimmed.clean_bytes.saturating_add(mapping.len);
            }
        }
    }
    trimmed
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: usize,
    len: usize,
    /// Not writable, no page of it ever written: the binary's code and read-only data.
    clean: bool,
}

/// What smaps says of one mapping of ours. A mapping is clean only on positive evidence:
/// read-only now, no page of it in memory written (`Anonymous: 0`), none written and swapped
/// out (`Swap: 0`: a written page leaves `Anonymous` when it goes to swap), and never mapped
/// writable (no `ac` in `VmFlags`: the kernel marks private writable mappings accountable, and
/// the mark stays after the loader makes relocated data read-only). A smaps without one of
/// these lines (an emulated `/proc`) leaves the mapping unclean: it is only paged out.
#[derive(Debug, Default)]
struct Evidence {
    read_only: bool,
    unwritten: Option<bool>,
    unswapped: Option<bool>,
    never_writable: Option<bool>,
}

impl Evidence {
    fn clean(&self) -> bool {
        self.read_only
            && self.unwritten == Some(true)
            && self.unswapped == Some(true)
            && self.never_writable == Some(true)
    }
}

/// A `kB` field's value is zero.
fn zero_kb(value: &str) -> bool {
    value.trim().trim_end_matches("kB").trim() == "0"
}

/// The mappings of `exe` that `/proc/self/smaps` lists.
fn own_mappings(smaps: &str, exe: &std::path::Path) -> Vec<Mapping> {
    let mut found: Vec<(Mapping, Evidence)> = Vec::new();
    // Whether the mapping being read is one of ours.
    let mut ours = false;
    for line in smaps.lines() {
        let field = |name: &str| line.strip_prefix(name);
        if let Some(evidence) = found.last_mut().filter(|_| ours).map(|(_, e)| e) {
            if let Some(kb) = field("Anonymous:") {
                evidence.unwritten = Some(zero_kb(kb));
                continue;
            }
            if let Some(kb) = field("Swap:") {
                evidence.unswapped = Some(zero_kb(kb));
                continue;
            }
            if let Some(flags) = field("VmFlags:") {
                evidence.never_writable = Some(!flags.split_whitespace().any(|f| f == "ac"));
                continue;
            }
        }
        // A mapping's first line: start-end perms offset dev inode path.
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let path = fields.nth(3);
        let len = end.saturating_sub(start);
        ours = path.map(std::path::Path::new) == Some(exe) && len > 0;
        if ours {
            let mapping = Mapping {
                start,
                len,
                clean: false,
            };
            let evidence = Evidence {
                read_only: perms == "r-xp" || perms == "r--p",
                ..Evidence::default()
            };
            found.push((mapping, evidence));
        }
    }
    found
        .into_iter()
        .map(|(mapping, evidence)| Mapping {
            clean: evidence.clean(),
            ..mapping
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_own_mappings_are_picked_and_only_unwritten_ones_dropped() {
        let maps = "\
5581a000-5581b000 r--p 00000000 fd:01 123 /usr/bin/hera
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd mr mw me
5581b000-5591b000 r-xp 00001000 fd:01 123 /usr/bin/hera
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me
5591b000-5591c000 rw-p 00101000 fd:01 123 /usr/bin/hera
Anonymous:             4 kB
Swap:                  0 kB
VmFlags: rd wr mr mw me ac
5591c000-5591d000 r-xp 00102000 fd:01 123 /usr/bin/hera
Anonymous:             4 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me
5591d000-5591e000 r--p 00103000 fd:01 123 /usr/bin/hera
Anonymous:             4 kB
Swap:                  0 kB
VmFlags: rd mr mw me ac
5591e000-5591f000 r--p 00104000 fd:01 123 /usr/bin/hera
Anonymous:             0 kB
Swap:                  4 kB
VmFlags: rd mr mw me ac
5591f000-55920000 r--p 00105000 fd:01 123 /usr/bin/hera
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd mr mw me ac
55920000-55921000 r--p 00106000 fd:01 123 /usr/bin/hera
Rss:                   4 kB
7f00a000-7f00b000 r-xp 00000000 fd:01 456 /usr/lib/libc.so.6
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me
7f00c000-7f00d000 rw-p 00000000 00:00 0 
7ffd0000-7ffd1000 rw-p 00000000 00:00 0 [stack]
bad line
";
        let picked = own_mappings(maps, std::path::Path::new("/usr/bin/hera"));
        let m = |start, len, clean| Mapping { start, len, clean };
        assert_eq!(
            picked,
            vec![
                // Read-only data never written: dropped like code, so the page cache keeps it.
                m(0x5581_a000, 0x1000, true),
                m(0x5581_b000, 0x10_0000, true),
                m(0x5591_b000, 0x1000, false),
                // Executable, but a page of it was written: never dropped, only paged out.
                m(0x5591_c000, 0x1000, false),
                // Read-only now, but relocated by the loader: only paged out.
                m(0x5591_d000, 0x1000, false),
                // Relocated, its written pages all in swap (Anonymous reads 0): still unclean.
                m(0x5591_e000, 0x1000, false),
                // Once writable (accountable), nothing written or swapped now: still unclean.
                m(0x5591_f000, 0x1000, false),
                // No evidence at all (an emulated /proc): unclean.
                m(0x5592_0000, 0x1000, false),
            ]
        );
    }
}
