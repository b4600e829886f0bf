/* od_testmodel.c: a TEST FIXTURE, not a shipped model. A two-op int8 network implementing od_model_api.h so the
 * agent, ports and host tests can run before (and independently of) the code generator.
 *
 * op 0 FULLY_CONNECTED: acc[o] = bias[o] + sum_i w[o][i] * x[i]; y[o] = clamp((acc * 3 + 64) >> 7)
 * op 1 ADD:             z[o] = clamp(y[o] + 5)
 * tests/test_firmware_host.py recomputes both in Python.
 */
#include <stddef.h>

#include "od_model_api.h"

#define IN_N 16
#define OUT_N 4

static const int8_t k_weights[OUT_N][IN_N] = {
    {1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 15, -16},
    {-3, 3, -3, 3, -3, 3, -3, 3, -3, 3, -3, 3, -3, 3, -3, 3},
    {127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -128},
    {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2},
};
static const int32_t k_bias[OUT_N] = {100, -50, 0, 7};

/* Input at 0, FC output at 16, ADD output in place over the FC output (in-place reuse, as generated code does). */
static int8_t g_arena[32] __attribute__((aligned(16)));

static const od_tensor_info_t k_inputs[1] = {
    {"input", 2, {1, IN_N, 0, 0, 0}, 0.05f, 0, IN_N, OD_DTYPE_INT8},
};
static const od_tensor_info_t k_outputs[1] = {
    {"output", 2, {1, OUT_N, 0, 0, 0}, 0.1f, 5, OUT_N, OD_DTYPE_INT8},
};
static const od_model_info_t k_info = {
    "testmodel",
    "0000000000000000000000000000000000000000000000000000000000000000",
    (uint32_t)sizeof(g_arena),
    (uint32_t)(sizeof(k_weights) + sizeof(k_bias)),
    1,
    1,
    k_inputs,
    k_outputs,
    2,
    (uint64_t)IN_N * OUT_N,
};
static const char *const k_op_names[2] = {"FULLY_CONNECTED", "ADD"};
static od_op_hook_t g_hook;

static int8_t clamp8(int32_t v) { return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v)); }

const od_model_info_t *od_model_info(void) { return &k_info; }
int8_t *od_model_input(int idx) { return idx == 0 ? &g_arena[0] : NULL; }
int8_t *od_model_output(int idx) { return idx == 0 ? &g_arena[16] : NULL; }
void od_model_set_op_hook(od_op_hook_t hook) { g_hook = hook; }
const char *od_model_op_name(uint32_t op_index) { return op_index < 2u ? k_op_names[op_index] : NULL; }

od_status_t od_model_invoke(void)
{
    const int8_t *x = &g_arena[0];
    int8_t *y = &g_arena[16];
    if (g_hook) g_hook(0, 0);
    for (int o = 0; o < OUT_N; o++) {
        int32_t acc = k_bias[o];
        for (int i = 0; i < IN_N; i++) acc += (int32_t)k_weights[o][i] * x[i];
        y[o] = clamp8((acc * 3 + 64) >> 7);
    }
    if (g_hook) g_hook(0, 1);
    if (g_hook) g_hook(1, 0);
    for (int o = 0; o < OUT_N; o++) y[o] = clamp8((int32_t)y[o] + 5);
    if (g_hook) g_hook(1, 1);
    return OD_OK;
}
