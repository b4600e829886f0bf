/* od_reduce_fast_s8.h: MEAN / SUM over leading axes (a spatial mean of NHWC channels), included by
 * od_kernels_ext.h. */
#ifndef OD_REDUCE_FAST_S8_H
#define OD_REDUCE_FAST_S8_H

#include "od_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The input as [num_reduced, num_outputs] rows: the code generator picks it when every reduced axis precedes
 * every kept one. Same parameters, scratch (num_outputs int32) and result as od_reduce_s8. */
od_status_t od_reduce_rows_s8(const od_reduce_params_t *p, const int8_t *in, int32_t *scratch, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* OD_REDUCE_FAST_S8_H */
