//! Spawn sites in 4 bytes: a task's metadata has room for an index, not
//! for a `&'static Location` (see `TaskMeta` for the size budget).
//!
//! Each distinct site is interned once in a process-wide table; a
//! thread-local cache of recent sites makes a spawn's look-up a hash of the
//! address and one compare. Sites are never removed: there are as many as
//! there are spawn calls in the program text.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::{LazyLock, Mutex};

/// A spawn site's index in the table (`u32::MAX`: none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Site(u32);

impl Site {
    /// No site (the table is full, or a thread is being torn down).
    pub(crate) const NONE: Site = Site(u32::MAX);

    /// The index as stored in a worker's slot.
    pub(crate) fn to_bits(self) -> u32 {
        self.0
    }

    /// A site read back from a worker's slot.
    pub(crate) fn from_bits(bits: u32) -> Site {
        Site(bits)
    }
}

/// Every site seen: by index, and the index of each by address (a miss of
/// a thread's cache is one hash look-up under the lock, however many
/// sites the program has).
#[derive(Default)]
struct Sites {
    by_index: Vec<&'static Location<'static>>,
    by_addr: HashMap<usize, u32>,
}

static SITES: LazyLock<Mutex<Sites>> = LazyLock::new(Mutex::default);

/// Entries in each thread's cache (direct-mapped by address; 1 KB).
const CACHE: usize = 64;

std::thread_local! {
    /// Recently interned sites: (address, index), by a hash of the address.
    static RECENT: [std::cell::Cell<(usize, u32)>; CACHE] =
        const { [const { std::cell::Cell::new((0, 0)) }; CACHE] };
}

/// The index of `site`, interning it on first sight.
pub(crate) fn intern(site: &'static Location<'static>) -> Site {
    let addr = site as *const Location<'static> as usize;
    let slot = (addr >> 3).wrapping_mul(0x9E37_79B9) % CACHE;
    let cached = RECENT.try_with(|recent| {
        let (cached_addr, index) = recent[slot].get();
        if cached_addr == addr {
            return Site(index);
        }
        let found = intern_slow(site);
        recent[slot].set((addr, found.0));
        found
    });
    cached.unwrap_or_else(|_| intern_slow(site))
}

fn intern_slow(site: &'static Location<'static>) -> Site {
    let addr = site as *const Location<'static> as usize;
    let mut sites = SITES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(&index) = sites.by_addr.get(&addr) {
        return Site(index);
    }
    if sites.by_index.len() >= u32::MAX as usize - 1 {
        return Site::NONE;
    }
    let index = sites.by_index.len() as u32;
    sites.by_index.push(site);
    sites.by_addr.insert(addr, index);
    Site(index)
}

/// The site with index `site`, if any.
pub(crate) fn resolve(site: Site) -> Option<&'static Location<'static>> {
    let sites = SITES.lock().unwrap_or_else(|p| p.into_inner());
    sites.by_index.get(site.0 as usize).copied()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_site_resolves_to_itself_and_interns_once() {
        let here = Location::caller();
        let a = intern(here);
        let b = intern(here);
        assert_eq!(a, b);
        assert!(std::ptr::eq(resolve(a).unwrap(), here));
        let there = Location::caller();
        assert_ne!(intern(there), a);
        assert!(std::ptr::eq(resolve(intern(there)).unwrap(), there));
        assert_eq!(resolve(Site::NONE), None);
    }
}
