/* od_fully_connected_s8.c: FULLY_CONNECTED int8 reference (reference_integer_ops::FullyConnected[PerChannel]). */
#include "od_fixedpoint.h"
#include "od_kernels.h"

od_status_t od_fully_connected_s8_ref(const od_fc_params_t *p, const int8_t *in, const int8_t *filter,
                                      const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(filter);
    OD_CHECK_PTR(out);
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * p->in_depth;
        for (int32_t o = 0; o < p->out_depth; ++o) {
            const int8_t *w = filter + o * p->in_depth;
            int32_t acc = 0;
            for (int32_t d = 0; d < p->in_depth; ++d) {
                acc += ((int32_t)w[d] + p->filter_offset) * ((int32_t)x[d] + p->input_offset);
            }
            if (bias) acc += bias[o];
            const int32_t c = p->per_channel ? o : 0;
            acc = od_mbqm(acc, mult[c], shift[c]) + p->output_offset;
            out[b * p->out_depth + o] = (int8_t)od_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
    return OD_OK;
}

od_status_t od_fully_connected_s8(const od_fc_params_t *p, const int8_t *in, const int8_t *filter,
                                  const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
#if defined(OD_KERNELS_REFERENCE)
    return od_fully_connected_s8_ref(p, in, filter, bias, mult, shift, out);
#else
    return od_fully_connected_s8_opt(p, in, filter, bias, mult, shift, out);
#endif
}
