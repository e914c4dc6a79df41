//! How the processes' memory allocator gives memory back.
//!
//! glibc's malloc serves large requests (a chunk's COPY data, its record
//! events, a relay round) from `mmap` only while they are larger than a
//! threshold that it raises, up to 32 MiB, each time such a block is freed.
//! After a few chunks every buffer of a worker comes from the per-thread
//! arenas instead, and freed arena memory is rarely returned: a 1M-row load
//! held 310 MiB of resident memory for about 60 MiB in use. A fixed
//! threshold keeps large buffers in `mmap`, returned to the system when
//! dropped (measured in the README, Benchmark → Memory).
//!
//! glibc also gives each thread that allocates while the others hold their
//! arenas a new one, up to eight per core, and each keeps its own high-water
//! mark: the worker's blocking threads (parsing, record events, the
//! archive's Parquet encoders) took a 3M-row load's peak to 161–174 MiB.
//! Two arenas per core held it at 140–145 MiB at the same speed (README,
//! Benchmark → "Nagle's algorithm…").

/// The fixed threshold: requests of at least this many bytes are mapped.
pub const MMAP_THRESHOLD: usize = 256 * 1024;

/// Arenas glibc's malloc may keep per core (its default is eight).
pub const ARENAS_PER_CORE: usize = 2;

/// What [`tune`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// The threshold is fixed at [`MMAP_THRESHOLD`], and the arenas capped
    /// at [`ARENAS_PER_CORE`] per core unless `MALLOC_ARENA_MAX` sets them.
    Fixed,
    /// `GLIBC_TUNABLES` sets malloc's own tuning; it is left as it is.
    LeftToTunables,
    /// Not glibc: nothing to do.
    NotGlibc,
    /// glibc refused the setting.
    Refused,
}

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] and caps its arenas
/// at [`ARENAS_PER_CORE`] per core, unless the operator tunes malloc through
/// `GLIBC_TUNABLES` (then neither) or `MALLOC_ARENA_MAX` (then not the
/// arenas). Call it first thing in `main`, before the buffers it concerns
/// are allocated.
pub fn tune() -> Tuning {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if tunables.contains("glibc.malloc.") {
        return Tuning::LeftToTunables;
    }
    let arenas = std::env::var_os("MALLOC_ARENA_MAX")
        .is_none()
        .then(|| ARENAS_PER_CORE * std::thread::available_parallelism().map_or(1, |n| n.get()));
    set_malloc(arenas)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_malloc(arenas: Option<usize>) -> Tuning {
    let set = |param: libc::c_int, value: usize| {
        let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` takes two integers and changes only malloc's own
        // parameters, holding malloc's lock while it does. glibc's one
        // caveat ("MT-Unsafe init") is a race with malloc's lazy
        // initialisation in another thread; `tune` has already allocated on
        // this thread (the environment lookup), so malloc is initialised
        // before this call.
        unsafe { libc::mallopt(param, value) == 1 }
    };
    let threshold = set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    let arenas = arenas.is_none_or(|n| set(libc::M_ARENA_MAX, n));
    if threshold && arenas {
        Tuning::Fixed
    } else {
        Tuning::Refused
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_malloc(_arenas: Option<usize>) -> Tuning {
    Tuning::NotGlibc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_and_arenas_are_fixed_unless_tunables_say_otherwise() {
        // Tests run on the project's Linux/glibc machines, without
        // GLIBC_TUNABLES; setting the threshold twice is harmless.
        if std::env::var("GLIBC_TUNABLES").is_err() {
            let expected = if cfg!(all(target_os = "linux", target_env = "gnu")) {
                Tuning::Fixed
            } else {
                Tuning::NotGlibc
            };
            assert_eq!(tune(), expected);
        }
    }
}
