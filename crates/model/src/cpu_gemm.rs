//! Matrix products on CPU slices for the fused training kernels, through the `gemm` crate that
//! candle's own CPU matmul calls: strided views instead of copies, and a choice of running on
//! the calling thread (when the caller already runs many products in parallel) or on all cores.

use std::mem::MaybeUninit;

use gemm::Parallelism;

use crate::fused_grad::Real;

/// A matrix view: values with a row stride and a column stride.
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T> {
    pub data: &'a [T],
    pub row_stride: usize,
    pub col_stride: usize,
}

/// A row-major matrix of `cols` columns.
pub(crate) fn rows_of<T>(data: &[T], cols: usize) -> View<'_, T> {
    View {
        data,
        row_stride: cols,
        col_stride: 1,
    }
}

/// The transpose of a row-major matrix of `cols` columns.
pub(crate) fn transposed<T>(data: &[T], cols: usize) -> View<'_, T> {
    View {
        data,
        row_stride: 1,
        col_stride: cols,
    }
}

/// Where a product runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// On the calling thread.
    One,
    /// On rayon's pool.
    All,
}

/// `dst (m × n, row-major) = beta · lhs (m × k) · rhs (k × n)`.
pub(crate) fn matmul<T: Real>(
    threads: Threads,
    mnk: (usize, usize, usize),
    dst: &mut [T],
    lhs: View<'_, T>,
    rhs: View<'_, T>,
    beta: T,
) {
    product(threads, mnk, Out::of(dst), false, lhs, rhs, beta)
}

/// `dst (m × n, row-major) += beta · lhs (m × k) · rhs (k × n)`.
pub(crate) fn matmul_add<T: Real>(
    threads: Threads,
    mnk: (usize, usize, usize),
    dst: &mut [T],
    lhs: View<'_, T>,
    rhs: View<'_, T>,
    beta: T,
) {
    product(threads, mnk, Out::of(dst), true, lhs, rhs, beta)
}

/// [`matmul`] into an output that has not been initialised: gemm writes every value of
/// `dst (m × n)` without reading any.
pub(crate) fn matmul_uninit<T: Real>(
    threads: Threads,
    mnk: (usize, usize, usize),
    dst: &mut [MaybeUninit<T>],
    lhs: View<'_, T>,
    rhs: View<'_, T>,
    beta: T,
) {
    // With `accumulate` false gemm only writes `dst`; MaybeUninit<T> has T's layout.
    let out = Out {
        ptr: dst.as_mut_ptr().cast::<T>(),
        len: dst.len(),
    };
    product(threads, mnk, out, false, lhs, rhs, beta)
}

/// Where a product goes: `len` values at `ptr`, initialised unless the product only writes.
struct Out<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> Out<T> {
    fn of(dst: &mut [T]) -> Self {
        Out {
            ptr: dst.as_mut_ptr(),
            len: dst.len(),
        }
    }
}

fn product<T: Real>(
    threads: Threads,
    (m, n, k): (usize, usize, usize),
    dst: Out<T>,
    accumulate: bool,
    lhs: View<'_, T>,
    rhs: View<'_, T>,
    beta: T,
) {
    let last =
        |v: &View<'_, T>, r: usize, c: usize| (r - 1) * v.row_stride + (c - 1) * v.col_stride;
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len >= m * n, "matmul: output too short");
    if k == 0 {
        if !accumulate {
            for i in 0..m * n {
                // SAFETY: inside the `len` values asserted above.
                unsafe { dst.ptr.add(i).write(T::zero()) };
            }
        }
        return;
    }
    assert!(last(&lhs, m, k) < lhs.data.len(), "matmul: lhs too short");
    assert!(last(&rhs, k, n) < rhs.data.len(), "matmul: rhs too short");
    let parallelism = match threads {
        Threads::One => Parallelism::None,
        Threads::All => match rayon::current_num_threads() {
            0 | 1 => Parallelism::None,
            t => Parallelism::Rayon(t),
        },
    };
    // SAFETY: the asserts above keep every index gemm reads or writes inside the slices and
    // `dst`, which gemm reads only when `accumulate` (then it is initialised: `Out::of`); `T` is
    // f32 or f64 (the `Real` types), which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            T::one(),
            beta,
            false,
            false,
            false,
            parallelism,
        );
    }
}
