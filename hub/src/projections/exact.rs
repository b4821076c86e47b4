//! Growing the views' small vectors by exactly one place at a time.
//!
//! A `Vec` doubles its room when it fills (and starts at four places), so the ~1.2 million small
//! vectors of a million events' views (a person's timeline and plans, a plan's event times, a
//! consent's changes…) held ~38 MB of room they never used: a million events' views took 172 MB
//! of heap, a copy of them with every vector exactly full 134 MB (`examples/views_footprint.rs`,
//! docs/performance.md). Views grow by one event at a time and most of their vectors stay short,
//! so each is grown by exactly one place instead: the allocator moves it only when it leaves its
//! size class, and `insert` already shifts every later element.

/// Inserts `value` at `index` (as [`Vec::insert`]), growing `items` by exactly one place.
pub fn insert<T>(items: &mut Vec<T>, index: usize, value: T) {
    items.reserve_exact(1);
    items.insert(index, value);
}

/// Appends `value` (as [`Vec::push`]), growing `items` by exactly one place.
pub fn push<T>(items: &mut Vec<T>, value: T) {
    items.reserve_exact(1);
    items.push(value);
}

#[cfg(test)]
mod tests {
    #[test]
    fn vectors_grow_by_exactly_one_place() {
        let mut items: Vec<u64> = Vec::new();
        for i in 0..10 {
            super::insert(&mut items, 0, i);
            assert_eq!(items.capacity(), items.len());
        }
        super::push(&mut items, 10);
        assert_eq!(items.capacity(), 11);
        assert_eq!(items, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 10]);
    }
}
