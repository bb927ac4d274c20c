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

/// [`on_pool_for`] with the pool's other threads kept awake while `f` runs: each polls for
/// the jobs of `f`'s parallel loops instead of going to sleep between them.
///
/// Generation is hundreds of short parallel loops per token (a projection, an attention, a
/// norm) with short serial steps between them; rayon's idle threads sleep after a few
/// microseconds, and waking one costs more than the loop it wakes for (measured here: a
/// 32 × 576 loop takes 11–14 µs back to back on two threads and 21–22 µs after a 30 µs
/// serial step, against 17 µs on one thread). The polling threads burn their cores while `f`
/// runs serial code, as llama.cpp's spinning thread pool does.
pub fn on_pool_busy_for<R: Send>(device: &candle_core::Device, f: impl FnOnce() -> R + Send) -> R {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let helpers = rayon::current_num_threads().saturating_sub(1);
    if !device.is_cpu() || helpers == 0 {
        return on_pool_for(device, f);
    }
    let done = AtomicBool::new(false);
    let started = AtomicUsize::new(0);
    on_pool(|| {
        let owner = rayon::current_thread_index();
        rayon::scope(|s| {
            for _ in 0..helpers {
                s.spawn(|_| {
                    // The thread running `f` may pick this job up itself while it waits
                    // inside one of `f`'s loops: it must not poll there, or `f` never ends.
                    if rayon::current_thread_index() == owner {
                        return;
                    }
                    started.fetch_add(1, Ordering::AcqRel);
                    while !done.load(Ordering::Acquire) {
                        if rayon::yield_now() != Some(rayon::Yield::Executed) {
                            std::hint::spin_loop();
                        }
                    }
                });
            }
            // Let the helpers reach their threads first (briefly: a pool busy with other
            // work may not take them at all, and `f` does not need them).
            let t = std::time::Instant::now();
            while started.load(Ordering::Acquire) < helpers
                && t.elapsed() < std::time::Duration::from_millis(2)
            {
                std::hint::spin_loop();
            }
            let r = f();
            done.store(true, Ordering::Release);
            r
        })
    })
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

    #[test]
    fn busy_pool_runs_nested_loops_and_returns() {
        use rayon::prelude::*;
        let dev = candle_core::Device::Cpu;
        for _ in 0..50 {
            let sum = on_pool_busy_for(&dev, || {
                (0..64)
                    .map(|i| (0..1000u64).into_par_iter().map(|j| j * i).sum::<u64>())
                    .sum::<u64>()
            });
            assert_eq!(sum, (0..64u64).sum::<u64>() * 499_500);
        }
        // Nested inside itself and inside a plain pool job.
        let v = on_pool_busy_for(&dev, || on_pool_busy_for(&dev, || on_pool(|| 3)));
        assert_eq!(v, 3);
    }
}
