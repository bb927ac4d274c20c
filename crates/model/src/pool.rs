//! Running work on rayon's pool instead of beside it.
//!
//! Every parallel kernel here (the quantized matmul, cached attention, the training kernels and
//! candle's gemm) is a rayon loop. Started from a thread outside the pool, such as `main`, each
//! loop is handed to the pool while the caller sleeps until it is done, so that one decoding
//! step of a 30-layer model puts the caller to sleep and wakes it about 200 times: on two cores
//! a profile of decoding spent about a quarter of its samples in the scheduler. Started from a
//! thread of the pool, the same loops run on that thread with the others helping, and the
//! caller never sleeps. [`on_pool`] moves a whole forward pass (or training step) onto the pool
//! once.

/// Runs `f` on a thread of rayon's global pool and returns its result: directly when the
/// calling thread is one already, otherwise by handing `f` over once and waiting for it.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

/// [`on_pool`] for work on `device` when it is the CPU; on a GPU `f` runs where it was called
/// (the kernels there are not rayon loops, and GPU contexts are bound to the calling thread).
pub fn on_pool_for<R: Send>(device: &candle_core::Device, f: impl FnOnce() -> R + Send) -> R {
    if device.is_cpu() {
        on_pool(f)
    } else {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_a_pool_thread_and_returns_the_result() {
        assert!(rayon::current_thread_index().is_none());
        let (on, v) = on_pool(|| (rayon::current_thread_index().is_some(), 41 + 1));
        assert!(on);
        assert_eq!(v, 42);
        // Nested: already on the pool, runs in place.
        let same = on_pool(|| {
            let outer = rayon::current_thread_index();
            on_pool(|| rayon::current_thread_index() == outer)
        });
        assert!(same);
        let (on, v) = on_pool_for(&candle_core::Device::Cpu, || {
            (rayon::current_thread_index().is_some(), 7)
        });
        assert!(on);
        assert_eq!(v, 7);
    }
}
