/* od_model_api.h: the interface every generated model library implements.
 *
 * `ondevice export --target mcu` writes a C library (model.c + weights) that implements these functions.
 * The firmware core (protocol agent) and the host runner code against this header only, so a new model is a
 * relink, not a code change. No malloc anywhere: the arena is a static 16-byte-aligned array in the generated code.
 */
#ifndef OD_MODEL_API_H
#define OD_MODEL_API_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OD_MODEL_API_VERSION 1

typedef enum { OD_OK = 0, OD_ERR_BAD_PARAM, OD_ERR_UNSUPPORTED, OD_ERR_INTERNAL } od_status_t;

/* dtype codes used in od_tensor_info_t.dtype */
#define OD_DTYPE_INT8 0
#define OD_DTYPE_INT16 1
#define OD_DTYPE_INT32 2
#define OD_DTYPE_UINT8 3
#define OD_DTYPE_FLOAT32 4 /* float I/O (QUANTIZE/DEQUANTIZE inside the model): cast the pointer to float * */

typedef struct {
    const char *name;
    uint8_t rank;
    int32_t shape[5];
    float scale;
    int32_t zero_point;
    uint32_t bytes;
    uint8_t dtype; /* 0=int8, 1=int16, 2=int32, 3=uint8, 4=float32; scale 0 when not quantized */
} od_tensor_info_t;

typedef struct {
    const char *name;
    const char *sha256_hex;       /* SHA-256 of the source .tflite */
    uint32_t arena_bytes;         /* static activation arena (RAM) */
    uint32_t flash_weight_bytes;  /* const weights, biases and quantization tables */
    uint8_t n_inputs, n_outputs;
    const od_tensor_info_t *inputs, *outputs;
    uint32_t n_ops;
    uint64_t macs;                /* multiply-accumulates per inference */
} od_model_info_t;

const od_model_info_t *od_model_info(void);
int8_t *od_model_input(int idx);   /* static arena, 16-byte aligned; NULL if idx is out of range */
int8_t *od_model_output(int idx);  /* points into the static arena; NULL if idx is out of range */
/* Runs every op in order. Inputs may be overwritten (in-place reuse): refill them before each invoke. */
od_status_t od_model_invoke(void);

typedef void (*od_op_hook_t)(uint32_t op_index, int is_end);  /* optional per-op timing */
void od_model_set_op_hook(od_op_hook_t hook);                  /* NULL disables */
const char *od_model_op_name(uint32_t op_index);               /* e.g. "CONV_2D"; NULL if out of range */

#ifdef __cplusplus
}
#endif

#endif /* OD_MODEL_API_H */
