/* od_rowexec_s8.c: row-by-row execution schemes that cut peak RAM (issue 15), built on the existing kernels so
 * every output is the one those kernels (and TFLM) compute.
 *
 * - od_resblock_s8: conv P (k x k, stride 1) -> conv C (stride 1) -> ADD(x, z) over P's input x, one output row at
 *   a time. P's output y lives only as a window of C's k_h rows; C's output row goes to a staging row, is added to
 *   x's row and written over it. x row r is overwritten only after every y row that reads it was computed (the
 *   code generator checks k_C - pad_C - pad_P >= 1), so the block needs x + the window + one row, not three
 *   full tensors.
 * - od_conv2d_s8_im2col_ref_staged: the reference in-place conv for any shape where every output pixel lands at
 *   or below the lowest input byte it reads (the planner's check): each pixel's outputs are staged, then stored.
 */
#include <string.h>

#include "od_fixedpoint.h"
#include "od_im2col_common.h"
#include "od_kernels.h"
#include "od_kernels_ext.h"

/* One output row of a stride-1 conv over input rows [lo, hi] (clipped to the tensor) stored from `in`. */
static od_status_t conv_row(const od_conv_params_t *full, od_conv_params_t *row, int32_t r, int32_t lo,
                            int32_t hi, const int8_t *in, const int8_t *w, const int32_t *b, const int32_t *m,
                            const int32_t *s, int8_t *out, int16_t *scratch) {
    *row = *full;
    row->in_h = hi - lo + 1;
    row->out_h = 1;
    row->pad_h = lo - (r - full->pad_h);
    return od_conv2d_s8_im2col(row, in, w, b, m, s, out, scratch);
}

static inline int32_t max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t min_i32(int32_t a, int32_t b) { return a < b ? a : b; }

od_status_t od_resblock_s8(const od_resblock_params_t *rb, int8_t *x, int8_t *scratch) {
    OD_CHECK_PTR(rb);
    OD_CHECK_PTR(x);
    OD_CHECK_PTR(scratch);
    const od_conv_params_t *pp = rb->p, *pc = rb->c;
    const int32_t H = pp->in_h, W = pp->in_w, KP = pp->k_h, KC = pc->k_h;
    OD_CHECK(pp->batches == 1 && pp->stride_h == 1 && pc->stride_h == 1 && pp->out_h == H && pc->in_h == H &&
             pc->out_h == H && pp->out_w == W && pc->in_w == W && pc->out_w == W &&
             pc->in_c == pp->out_c && pc->out_c == pp->in_c && KC - pc->pad_h - pp->pad_h >= 1);
    const int32_t row_x = W * pp->in_c, row_y = W * pp->out_c;
    int8_t *win = scratch, *stage = win + ((KC * row_y + 3) & ~3);
    int16_t *col = (int16_t *)(void *)(stage + ((row_x + 3) & ~3));
    od_conv_params_t row;
    od_binary_params_t add = *rb->add;
    for (int d = 0; d < OD_MAX_DIMS; ++d) add.out_shape[d] = add.in1_strides[d] = add.in2_strides[d] = 0;
    for (int d = 0; d < OD_MAX_DIMS - 1; ++d) add.out_shape[d] = 1;
    add.out_shape[OD_MAX_DIMS - 1] = row_x;
    add.in1_strides[OD_MAX_DIMS - 1] = add.in2_strides[OD_MAX_DIMS - 1] = 1;
    int32_t wlo = 0, whi = -1; /* y rows held in the window, contiguous from win */
    for (int32_t r = 0; r < H; ++r) {
        const int32_t lo = max_i32(0, r - pc->pad_h), hi = min_i32(H - 1, r - pc->pad_h + KC - 1);
        if (lo > wlo && whi >= lo) memmove(win, win + (lo - wlo) * row_y, (size_t)((whi - lo + 1) * row_y));
        if (lo > wlo) wlo = lo;
        if (whi < wlo - 1) whi = wlo - 1;
        for (int32_t j = whi + 1; j <= hi; ++j) { /* y row j from x rows [j - pad_P, j - pad_P + K_P - 1] */
            const int32_t xl = max_i32(0, j - pp->pad_h), xh = min_i32(H - 1, j - pp->pad_h + KP - 1);
            const od_status_t st = conv_row(pp, &row, j, xl, xh, x + xl * row_x, rb->p_w, rb->p_b, rb->p_m,
                                            rb->p_s, win + (j - wlo) * row_y, col);
            if (st != OD_OK) return st;
        }
        whi = hi;
        od_status_t st = conv_row(pc, &row, r, lo, hi, win, rb->c_w, rb->c_b, rb->c_m, rb->c_s, stage, col);
        if (st != OD_OK) return st;
        int8_t *xr = x + r * row_x;
        st = rb->add_fast ? (rb->x_first ? od_add_s8_fast(&add, xr, stage, xr) : od_add_s8_fast(&add, stage, xr, xr))
                          : (rb->x_first ? od_add_s8(&add, xr, stage, xr) : od_add_s8(&add, stage, xr, xr));
        if (st != OD_OK) return st;
    }
    return OD_OK;
}

od_status_t od_conv2d_s8_im2col_ref_staged(const od_conv_params_t *p, int8_t *buf, const int8_t *filter,
                                           const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                           int8_t *stage) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(buf);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(stage);
    for (int32_t px = 0; px < p->batches * p->out_h * p->out_w; ++px) {
        for (int32_t oc = 0; oc < p->out_c; ++oc) {
            const int32_t acc = od_im2col_ref_acc(p, buf, filter, bias, px, oc);
            stage[oc] = (int8_t)od_clamp_i32(od_mbqm(acc, mult[oc], shift[oc]) + p->output_offset, p->act_min,
                                             p->act_max);
        }
        memcpy(buf + px * p->out_c, stage, (size_t)p->out_c);
    }
    return OD_OK;
}
