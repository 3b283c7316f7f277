//! Allocator tuning for programs that churn through large polynomial buffers.
//!
//! A ring element at `N = 2^16` with 30 primes is 15 MiB. glibc serves allocations above its mmap
//! threshold with fresh `mmap`s and returns them on free, so every temporary of a key switch is
//! page-faulted in again (a third of the CPU time of CKKS bootstrapping, measured). Raising the
//! thresholds keeps freed buffers in the heap for reuse.

/// Keeps large freed allocations in the process heap (glibc `mallopt`: mmap threshold 32 MiB,
/// glibc's maximum on 64-bit; trim threshold 2 GiB; top pad 64 MiB; one arena, so that worker
/// threads reuse the main heap instead of creating and unmapping per-thread heaps, whose pages
/// the kernel zeroes again at every first touch). Returns whether the setting was applied; a no-op
/// returning `false` on other C libraries. Call once at program start, before heavy work.
pub fn retain_large_allocations() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes allocator tuning parameters (it takes glibc's arena
        // lock itself); the values are within glibc's documented ranges.
        unsafe {
            let a = libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            let b = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            let c = libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            let d = libc::mallopt(libc::M_ARENA_MAX, 1);
            a == 1 && b == 1 && c == 1 && d == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Hands freed heap memory back to the operating system (glibc `malloc_trim`), undoing what
/// [`retain_large_allocations`] keeps; for a long-running server when it becomes idle. Returns
/// whether any memory was released; a no-op returning `false` on other C libraries.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` only releases free pages of the allocator's own arenas (it takes
        // their locks itself); no live allocation is touched.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// The process's resident memory now, in bytes (Linux `/proc/self/statm`); `None` elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// The process's peak resident memory so far, in bytes (Linux `VmHWM`); `None` elsewhere.
pub fn peak_resident_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tuning_applies_on_glibc() {
        let applied = super::retain_large_allocations();
        assert_eq!(applied, cfg!(all(target_os = "linux", target_env = "gnu")));
        let v = vec![1u64; 4 << 20]; // 32 MiB: still allocates and frees normally
        assert_eq!(v.iter().sum::<u64>(), 4 << 20);
    }

    #[test]
    fn resident_size_follows_touched_memory() {
        if cfg!(not(target_os = "linux")) {
            return;
        }
        let before = super::resident_bytes().unwrap();
        // black_box: in release builds the fill of a vector read once may be elided.
        let v = std::hint::black_box(vec![3u8; 64 << 20]);
        let during = super::resident_bytes().unwrap();
        assert!(during >= before + (48 << 20), "{before} -> {during}");
        assert_eq!(v[12345], 3);
        drop(v);
        super::release_free_memory();
    }
}
