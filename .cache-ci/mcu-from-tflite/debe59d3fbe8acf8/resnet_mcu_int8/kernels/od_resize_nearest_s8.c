/* od_resize_nearest_s8.c: RESIZE_NEAREST_NEIGHBOR as a row/column gather; the code generator computes the
 * source indices with TFLite's float arithmetic (align_corners, half_pixel_centers). */
#include <string.h>

#include "od_kernels_ext.h"

od_status_t od_resize_nearest_s8(const od_resize_params_t *p, const int32_t *y_map, const int32_t *x_map,
                                 const int8_t *in, int8_t *out) {
    OD_CHECK_PTR(p);
    OD_CHECK_PTR(y_map);
    OD_CHECK_PTR(x_map);
    OD_CHECK_PTR(in);
    OD_CHECK_PTR(out);
    const int32_t c = p->channels;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *img = in + b * p->in_h * p->in_w * c;
        for (int32_t y = 0; y < p->out_h; ++y) {
            OD_CHECK(y_map[y] >= 0 && y_map[y] < p->in_h);
            const int8_t *row = img + y_map[y] * p->in_w * c;
            for (int32_t x = 0; x < p->out_w; ++x) {
                OD_CHECK(x_map[x] >= 0 && x_map[x] < p->in_w);
                memcpy(out, row + x_map[x] * c, (size_t)c);
                out += c;
            }
        }
    }
    return OD_OK;
}
