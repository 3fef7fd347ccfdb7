//! Large arrays of the session store in memory the kernel may back with huge pages.
//! Used by the engine worker's store and hash table.
//!
//! A touch reads a hash table bucket and a slab node at random in about 100 MB at 1M
//! sessions. With 4 KiB pages most such reads also miss the address translation cache,
//! which has room for a few thousand entries. With 2 MiB pages the whole map needs
//! about 50.
//! Linux backs memory with transparent huge pages when its setting is `always`, or
//! `madvise` and the program requests them, as the functions here do. On other systems
//! they only allocate.

/// Allocations smaller than this stay as they are: a huge page is 2 MiB.
const MIN_ADVISED_BYTES: usize = 4 << 20;

/// Returns an empty vector with room for `capacity` elements, with huge pages requested
/// for its memory when it is large enough. The request comes before the first write,
/// so the pages are huge from the start.
pub(crate) fn vec_with_capacity<T>(capacity: usize) -> Vec<T> {
    let vec = Vec::with_capacity(capacity);
    advise(&vec);
    vec
}

/// Makes room for one more element. A full vector moves into a new allocation of twice
/// the capacity, with huge pages requested, because growing the old allocation in place
/// would keep its small pages.
pub(crate) fn reserve_one<T>(vec: &mut Vec<T>) {
    if vec.len() < vec.capacity() {
        return;
    }
    let capacity = (vec.capacity() * 2).max(64);
    if capacity * size_of::<T>() < MIN_ADVISED_BYTES {
        vec.reserve(capacity - vec.len());
        return;
    }
    let mut grown = vec_with_capacity(capacity);
    grown.append(vec);
    *vec = grown;
}

#[cfg(target_os = "linux")]
fn advise<T>(vec: &Vec<T>) {
    let bytes = vec.capacity() * size_of::<T>();
    if bytes < MIN_ADVISED_BYTES {
        return;
    }
    const PAGE: usize = 4096;
    let start = vec.as_ptr() as usize;
    let aligned = start.next_multiple_of(PAGE);
    let end = (start + bytes) & !(PAGE - 1);
    if end <= aligned {
        return;
    }
    // SAFETY: the range lies inside the vector's own allocation, rounded inwards to
    // whole pages. MADV_HUGEPAGE changes how the kernel backs the pages, never their
    // contents, and an error (a kernel without transparent huge pages) only means small
    // pages, so it is ignored.
    unsafe {
        libc::madvise(
            aligned as *mut libc::c_void,
            end - aligned,
            libc::MADV_HUGEPAGE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn advise<T>(_vec: &Vec<T>) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_keeps_elements_in_order() {
        let mut vec: Vec<u64> = Vec::new();
        for n in 0..2_000_000u64 {
            reserve_one(&mut vec);
            vec.push(n);
        }
        assert!(vec.iter().copied().eq(0..2_000_000));
        assert!(vec.capacity() >= 2_000_000);
    }
}
