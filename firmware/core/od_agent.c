/* od_agent.c: the device side of PROTOCOL.md for a firmware with one compiled-in model.
 *
 * Single-threaded and allocation-free: one RX buffer (the request payload stays valid while it is handled), one
 * TX frame buffer, and static arrays sized by od_agent.h. Replies stream straight from the TX buffer to the port.
 */
#include "od_agent.h"

#include <string.h>

#include "od_model_api.h"
#include "od_port.h"
#include "od_proto.h"
#include "od_stack.h"
#if OD_WITH_FRONTEND
#include "od_frontend.h"
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the agent copies little-endian wire tensors straight into memory: big-endian targets need byte swaps"
#endif

#define OD_AGENT_NAME "od-mcu"
#define OD_AGENT_VERSION "0.1"
#define OD_NAME_MAX 32u

static od_rx_t g_rx;
static uint8_t g_tx[OD_MAX_FRAME];
static od_w_t g_w;
static uint16_t g_max_payload = OD_MAX_PAYLOAD;

static const od_model_info_t *g_model; /* NULL until a model is selected */
static uint8_t g_mode = OD_MODE_MODEL;
static uint8_t g_stage[OD_INPUT_STAGE_BYTES];

static uint64_t g_timings[OD_MAX_RUNS];
static uint32_t g_total_runs;
static uint8_t g_timings_valid;
static uint64_t g_op_time[OD_MAX_OPS];
static uint64_t g_op_t0;
static uint8_t g_op_valid;
static uint32_t g_stack_hw;
static uint8_t g_stack_measured;

static uint16_t g_last_seq;
static uint8_t g_last_type;
static uint8_t g_have_last;

#if OD_WITH_FRONTEND
#ifndef OD_AUDIO_MAX_SAMPLES
#define OD_AUDIO_MAX_SAMPLES OD_FE_CLIP_SAMPLES
#endif
#if OD_AUDIO_MAX_SAMPLES < OD_FE_WINDOW
#error "OD_AUDIO_MAX_SAMPLES must hold at least one frontend window (OD_FE_WINDOW samples)"
#endif
#define OD_AUDIO_MAX_FRAMES (1 + (OD_AUDIO_MAX_SAMPLES - OD_FE_WINDOW) / OD_FE_STEP)
static int16_t g_audio[OD_AUDIO_MAX_SAMPLES];
static uint32_t g_audio_bytes;
static uint16_t g_features[OD_AUDIO_MAX_FRAMES * OD_FE_CHANNELS];
static uint32_t g_feat_frames;
static int32_t g_fe_mult, g_fe_shift, g_fe_zp;
#endif

/* ------------------------------------------------------------------------------------------------------------ */
/* sending */

static void reply_begin(void) { od_w_init(&g_w, g_tx + OD_HEADER_SIZE, g_max_payload); }

static void send_error(uint16_t seq, uint16_t code, uint32_t detail, const char *msg);

static void reply_send(uint8_t type, uint8_t flags, uint16_t seq)
{
    if (g_w.overflow) { /* a reply that does not fit is a bug here: say so rather than send half a payload */
        send_error(seq, OD_E_INTERNAL, type, "reply too large");
        return;
    }
    size_t n = od_frame_finish(g_tx, type, flags, seq, g_w.len);
    od_frame_emit(g_tx, n, port_putc);
}

static void send_error(uint16_t seq, uint16_t code, uint32_t detail, const char *msg)
{
    reply_begin();
    od_w_u16(&g_w, code);
    od_w_u32(&g_w, detail);
    if (msg) od_w_bytes(&g_w, msg, strlen(msg));
    reply_send(OD_MSG_ERROR, 0, seq);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* model helpers */

static uint8_t wire_dtype(uint8_t api_dtype)
{
    switch (api_dtype) {
    case OD_DTYPE_INT8: return OD_WIRE_INT8;
    case OD_DTYPE_INT16: return OD_WIRE_INT16;
    case OD_DTYPE_INT32: return OD_WIRE_INT32;
    case OD_DTYPE_UINT8: return OD_WIRE_UINT8;
    case OD_DTYPE_FLOAT32: return OD_WIRE_FLOAT32;
    default: return 0xFF;
    }
}

static uint32_t input_offset(int idx)
{
    uint32_t off = 0;
    for (int i = 0; i < idx; i++) off += g_model->inputs[i].bytes;
    return off;
}

static void op_hook(uint32_t op_index, int is_end)
{
    uint64_t t = port_time_now();
    if (op_index >= OD_MAX_OPS) return;
    if (!is_end) g_op_t0 = t;
    else g_op_time[op_index] += t - g_op_t0;
}

static int select_model(void)
{
    const od_model_info_t *m = od_model_info();
    uint32_t need = 0;
    for (int i = 0; i < m->n_inputs; i++) need += m->inputs[i].bytes;
    if (need > OD_INPUT_STAGE_BYTES) return OD_E_OUT_OF_MEMORY;
    g_model = m;
    g_mode = OD_MODE_MODEL;
    memset(g_stage, 0, sizeof g_stage);
    g_timings_valid = 0;
    g_op_valid = 0;
    return 0;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* running */

/* One invoke in the current mode. Staged inputs are copied before the clock starts; the frontend is inside it. */
static od_status_t run_once(uint64_t *elapsed)
{
    int first_staged = 0;
    if (g_mode == OD_MODE_FRONTEND_MODEL) first_staged = 1; /* input 0 comes from the frontend */
    if (g_mode != OD_MODE_FRONTEND && g_model) {
        for (int i = first_staged; i < g_model->n_inputs; i++) {
            memcpy(od_model_input(i), g_stage + input_offset(i), g_model->inputs[i].bytes);
        }
    }
    od_status_t st = OD_OK;
    uint64_t t0 = port_time_now();
#if OD_WITH_FRONTEND
    if (g_mode != OD_MODE_MODEL) {
        g_feat_frames = od_frontend_compute(g_audio, g_audio_bytes / 2u, g_features);
        if (g_mode == OD_MODE_FRONTEND_MODEL) {
            od_frontend_quantize(g_features, g_feat_frames * OD_FE_CHANNELS, g_fe_mult, g_fe_shift, g_fe_zp,
                                 od_model_input(0));
        }
    }
    if (g_mode != OD_MODE_FRONTEND) st = od_model_invoke();
#else
    st = od_model_invoke();
#endif
    uint64_t t1 = port_time_now();
    if (elapsed) *elapsed = t1 - t0;
    return st;
}

static void send_run_data(uint8_t type, uint8_t flags, uint16_t seq, uint32_t first, uint32_t count)
{
    reply_begin();
    od_w_u8(&g_w, OD_PORT_TIMER_UNIT);
    od_w_u32(&g_w, g_total_runs);
    od_w_u32(&g_w, first);
    od_w_u8(&g_w, (uint8_t)count);
    for (uint32_t i = 0; i < count; i++) od_w_u64(&g_w, g_timings[first + i]);
    reply_send(type, flags, seq);
}

static uint32_t timings_per_frame(void) { return (g_max_payload - 10u) / 8u; }

/* Stream stored timings [first, first + count) under a reply type, as RUN retries and GET_TIMINGS do. */
static void stream_timings(uint8_t type, uint16_t seq, uint32_t first, uint32_t count)
{
    uint32_t per = timings_per_frame();
    do {
        uint32_t n = count < per ? count : per;
        count -= n;
        send_run_data(type, count ? OD_FLAG_MORE : 0, seq, first, n);
        first += n;
    } while (count);
}

static int check_run_inputs(void)
{
    if (g_mode != OD_MODE_FRONTEND && !g_model) return OD_E_NO_MODEL;
#if OD_WITH_FRONTEND
    if (g_mode != OD_MODE_MODEL) {
        uint32_t frames = od_frontend_num_frames(g_audio_bytes / 2u);
        if (frames == 0) return OD_E_INVALID_INPUT_SIZE;
        if (g_mode == OD_MODE_FRONTEND_MODEL && frames * OD_FE_CHANNELS != g_model->inputs[0].bytes) {
            return OD_E_INVALID_INPUT_SIZE;
        }
    }
#endif
    return 0;
}

static void handle_run(uint16_t seq, od_r_t *r, int repeated)
{
    uint32_t runs = od_r_u32(r), warmup = od_r_u32(r);
    uint8_t unit = od_r_u8(r);
    if (r->short_read) {
        send_error(seq, OD_E_BAD_PAYLOAD, 0, "short RUN");
        return;
    }
    if (repeated) { /* a retry: never run twice, re-stream what the first attempt measured */
        if (g_timings_valid) stream_timings(OD_MSG_RUN | OD_REPLY_BIT, seq, 0, g_total_runs);
        else send_error(seq, OD_E_BAD_SEQ, 0, "timings gone");
        return;
    }
    int err = check_run_inputs();
    if (err) {
        send_error(seq, (uint16_t)err, 0, err == OD_E_NO_MODEL ? "no model" : "input size");
        return;
    }
    if (unit != OD_UNIT_DEFAULT && unit != OD_PORT_TIMER_UNIT) {
        send_error(seq, OD_E_UNSUPPORTED, OD_PORT_TIMER_UNIT, "unit");
        return;
    }
    if (runs == 0 || runs > OD_MAX_RUNS) {
        send_error(seq, OD_E_BAD_PAYLOAD, OD_MAX_RUNS, "runs");
        return;
    }
    if (warmup > OD_MAX_WARMUP) {
        send_error(seq, OD_E_BAD_PAYLOAD, OD_MAX_WARMUP, "warmup");
        return;
    }
    g_timings_valid = 0;
    g_op_valid = 0;
    g_total_runs = runs;
    od_stack_repaint();
    for (uint32_t i = 0; i < warmup; i++) {
        od_status_t st = run_once(NULL);
        if (st != OD_OK) {
            send_error(seq, OD_E_INVOKE_FAILED, (uint32_t)st, "warm-up invoke");
            return;
        }
    }
    send_run_data(OD_MSG_RUN | OD_REPLY_BIT, OD_FLAG_MORE, seq, 0, 0); /* liveness: warm-ups done */
    uint32_t per = timings_per_frame(), unsent = 0;
    uint64_t last_frame = port_time_now();
    for (uint32_t i = 0; i < runs; i++) {
        od_status_t st = run_once(&g_timings[i]);
        if (st != OD_OK) {
            send_error(seq, OD_E_INVOKE_FAILED, (uint32_t)st, "invoke");
            return;
        }
        unsent++;
        uint64_t now = port_time_now();
        int last = (i + 1 == runs);
        if (last || unsent == per || now - last_frame >= OD_PORT_PROGRESS_INTERVAL) {
            send_run_data(OD_MSG_RUN | OD_REPLY_BIT, last ? 0 : OD_FLAG_MORE, seq, i + 1 - unsent, unsent);
            unsent = 0;
            last_frame = port_time_now();
        }
    }
    g_timings_valid = 1;
    /* Per-op times come from one extra invoke, so the hook's own cost never enters the per-run timings. */
    if (g_model && g_mode != OD_MODE_FRONTEND) {
        memset(g_op_time, 0, sizeof g_op_time);
        od_model_set_op_hook(op_hook);
        od_status_t st = run_once(NULL);
        od_model_set_op_hook(NULL);
        g_op_valid = (st == OD_OK);
    }
    g_stack_hw = od_stack_high_water();
    g_stack_measured = 1;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* other requests */

static void handle_hello(uint16_t seq, od_r_t *r)
{
    uint8_t host_version = od_r_u8(r);
    uint16_t host_max = od_r_u16(r);
    if (r->short_read) {
        send_error(seq, OD_E_BAD_PAYLOAD, 0, "short HELLO");
        return;
    }
    if (host_version < 1) {
        send_error(seq, OD_E_UNSUPPORTED_VERSION, OD_PROTO_VERSION, "version");
        return;
    }
    uint16_t mp = host_max < OD_MAX_PAYLOAD ? host_max : OD_MAX_PAYLOAD;
    g_max_payload = mp < OD_MIN_PAYLOAD ? OD_MIN_PAYLOAD : mp;
    uint32_t caps = OD_CAP_BUILTIN_MODELS | OD_CAP_OP_TIMINGS | OD_CAP_MEMORY_STATS | OD_CAP_RESET |
                    OD_CAP_GET_OUTPUT;
#if OD_WITH_FRONTEND
    caps |= OD_CAP_FRONTEND;
#endif
    reply_begin();
    od_w_u8(&g_w, OD_PROTO_VERSION);
    od_w_u32(&g_w, caps);
    od_w_u16(&g_w, g_max_payload);
    od_w_u8(&g_w, OD_PORT_RX_WINDOW);
    od_w_u16(&g_w, OD_MAX_RUNS);
    od_w_u8(&g_w, (uint8_t)(1u << OD_PORT_TIMER_UNIT));
    od_w_u8(&g_w, OD_PORT_TIMER_UNIT);
    od_w_u32(&g_w, OD_PORT_CLOCK_HZ);
    od_w_u32(&g_w, OD_PORT_RAM_BYTES);
    od_w_u32(&g_w, OD_PORT_FLASH_BYTES);
    od_w_u8(&g_w, 1); /* one compiled-in model */
    od_w_u32(&g_w, port_boot_id());
    od_w_str8(&g_w, OD_AGENT_NAME, OD_NAME_MAX);
    od_w_str8(&g_w, OD_AGENT_NAME, OD_NAME_MAX);
    od_w_str8(&g_w, OD_PORT_BOARD, OD_NAME_MAX);
    reply_send(OD_MSG_HELLO | OD_REPLY_BIT, 0, seq);
}

static void handle_select(uint16_t seq, od_r_t *r)
{
    uint8_t index = od_r_u8(r), n;
    const uint8_t *name = od_r_str8(r, &n);
    if (r->short_read) {
        send_error(seq, OD_E_BAD_PAYLOAD, 0, "short SELECT");
        return;
    }
    const od_model_info_t *m = od_model_info();
    int match = (index == 0);
    if (index == 0xFF) {
        /* By name: the model name ("mitsis") also selects its artifact name ("mitsis_tflite_int8"). */
        size_t ml = strlen(m->name);
        match = n > 0 && n <= ml && memcmp(m->name, name, n) == 0 && (ml == n || m->name[n] == '_');
    }
    if (!match) {
        send_error(seq, OD_E_BAD_INDEX, 1, "no such model");
        return;
    }
    int err = select_model();
    if (err) {
        send_error(seq, (uint16_t)err, OD_INPUT_STAGE_BYTES, "inputs exceed OD_INPUT_STAGE_BYTES");
        return;
    }
    reply_begin();
    od_w_u8(&g_w, 0);
    od_w_str8(&g_w, m->name, OD_NAME_MAX);
    reply_send(OD_MSG_SELECT_BUILTIN_MODEL | OD_REPLY_BIT, 0, seq);
}

/* PROTOCOL.md 8, applied to our own MODEL_INFO: a wire dtype and 1..5 positive dims, or no reply at all. */
static int tensor_describable(const od_tensor_info_t *t)
{
    if (wire_dtype(t->dtype) == 0xFF || t->rank > 5u) return 0;
    for (unsigned d = 0; d < t->rank; d++) {
        if (t->shape[d] <= 0) return 0;
    }
    return 1;
}

static void handle_model_info(uint16_t seq)
{
    if (!g_model) {
        send_error(seq, OD_E_NO_MODEL, 0, "no model");
        return;
    }
    const od_model_info_t *m = g_model;
    size_t name_len = strlen(m->name);
    if (name_len > OD_NAME_MAX) name_len = OD_NAME_MAX;
    unsigned nt = (unsigned)m->n_inputs + m->n_outputs;
    size_t fixed = 32 + 4 + 4 + 1 + name_len + 2;
    for (unsigned i = 0; i < nt; i++) {
        const od_tensor_info_t *t = i < m->n_inputs ? &m->inputs[i] : &m->outputs[i - m->n_inputs];
        if (!tensor_describable(t)) {
            send_error(seq, OD_E_MODEL_INVALID, i, "tensor dtype or shape outside PROTOCOL.md");
            return;
        }
        fixed += 2u + 4u * t->rank + 8u + 1u;
    }
    /* Tensor names share what is left of one frame; they are shortened, never the frame split. */
    size_t per_name = (nt && fixed < g_max_payload) ? (g_max_payload - fixed) / nt : 0;
    if (per_name > OD_NAME_MAX) per_name = OD_NAME_MAX;
    reply_begin();
    od_w_sha256_hex(&g_w, m->sha256_hex);
    od_w_u32(&g_w, m->flash_weight_bytes);
    od_w_u32(&g_w, m->arena_bytes);
    od_w_str8(&g_w, m->name, OD_NAME_MAX);
    od_w_u8(&g_w, m->n_inputs);
    od_w_u8(&g_w, m->n_outputs);
    for (unsigned i = 0; i < nt; i++) {
        const od_tensor_info_t *t = i < m->n_inputs ? &m->inputs[i] : &m->outputs[i - m->n_inputs];
        od_w_u8(&g_w, wire_dtype(t->dtype));
        od_w_u8(&g_w, t->rank);
        for (unsigned d = 0; d < t->rank; d++) od_w_u32(&g_w, (uint32_t)t->shape[d]);
        od_w_f32(&g_w, t->scale);
        od_w_u32(&g_w, (uint32_t)t->zero_point);
        od_w_str8(&g_w, t->name, per_name);
    }
    if (g_w.overflow) {
        send_error(seq, OD_E_INTERNAL, 0, "MODEL_INFO does not fit a frame");
        return;
    }
    reply_send(OD_MSG_MODEL_INFO | OD_REPLY_BIT, 0, seq);
}

static void handle_set_mode(uint16_t seq, od_r_t *r)
{
    uint8_t mode = od_r_u8(r);
    if (r->short_read) {
        send_error(seq, OD_E_BAD_PAYLOAD, 0, "short SET_MODE");
        return;
    }
    if (mode > OD_MODE_FRONTEND) {
        send_error(seq, OD_E_UNSUPPORTED, mode, "mode");
        return;
    }
#if OD_WITH_FRONTEND
    if (mode == OD_MODE_FRONTEND_MODEL) {
        if (!g_model) {
            send_error(seq, OD_E_NO_MODEL, 0, "no model");
            return;
        }
        const od_tensor_info_t *in = &g_model->inputs[0];
        if (in->dtype != OD_DTYPE_INT8 ||
            !od_frontend_quant_multiplier(in->scale, &g_fe_mult, &g_fe_shift)) {
            send_error(seq, OD_E_UNSUPPORTED, mode, "model input is not int8 features");
            return;
        }
        g_fe_zp = in->zero_point;
    }
#else
    if (mode != OD_MODE_MODEL) {
        send_error(seq, OD_E_UNSUPPORTED, mode, "built without the frontend");
        return;
    }
#endif
    g_mode = mode;
    g_timings_valid = 0;
    reply_begin();
    od_w_u8(&g_w, mode);
    reply_send(OD_MSG_SET_MODE | OD_REPLY_BIT, 0, seq);
}

static void handle_set_input(uint16_t seq, od_r_t *r)
{
    uint8_t index = od_r_u8(r);
    uint32_t total = od_r_u32(r), offset = od_r_u32(r);
    uint16_t n;
    const uint8_t *data = od_r_rest(r, &n);
    if (r->short_read) {
        send_error(seq, OD_E_BAD_PAYLOAD, 0, "short SET_INPUT");
        return;
    }
    uint8_t *dst;
    uint32_t size;
    if (index == OD_AUDIO_INDEX) {
#if OD_WITH_FRONTEND
        if (total > sizeof g_audio || (total & 1u)) {
            send_error(seq, OD_E_INVALID_INPUT_SIZE, (uint32_t)sizeof g_audio, "audio size");
            return;
        }
        dst = (uint8_t *)g_audio;
        size = total;
#else
        send_error(seq, OD_E_BAD_INDEX, index, "no frontend");
        return;
#endif
    } else {
        if (!g_model) {
            send_error(seq, OD_E_NO_MODEL, 0, "no model");
            return;
        }
        if (index >= g_model->n_inputs) {
            send_error(seq, OD_E_BAD_INDEX, index, "input index");
            return;
        }
        size = g_model->inputs[index].bytes;
        dst = g_stage + input_offset(index);
    }
    if (total != size || offset > total || n > total - offset) {
        send_error(seq, OD_E_INVALID_INPUT_SIZE, size, "input size");
        return;
    }
    memcpy(dst + offset, data, n);
#if OD_WITH_FRONTEND
    if (index == OD_AUDIO_INDEX) g_audio_bytes = total;
#endif
    g_timings_valid = 0;
    reply_begin();
    od_w_u8(&g_w, index);
    od_w_u32(&g_w, offset + n);
    reply_send(OD_MSG_SET_INPUT | OD_REPLY_BIT, 0, seq);
}

static void handle_get_timings(uint16_t seq, od_r_t *r)
{
    uint32_t first = od_r_u32(r), count = od_r_u32(r);
    if (r->short_read) {
        send_error(seq, OD_E_BAD_PAYLOAD, 0, "short GET_TIMINGS");
        return;
    }
    if (!g_timings_valid || first > g_total_runs || count > g_total_runs - first) {
        send_error(seq, OD_E_BAD_INDEX, g_timings_valid ? g_total_runs : 0, "timing index");
        return;
    }
    stream_timings(OD_MSG_GET_TIMINGS | OD_REPLY_BIT, seq, first, count);
}

static void handle_get_output(uint16_t seq, od_r_t *r)
{
    uint8_t index = od_r_u8(r);
    uint32_t offset = od_r_u32(r), length = od_r_u32(r);
    if (r->short_read) {
        send_error(seq, OD_E_BAD_PAYLOAD, 0, "short GET_OUTPUT");
        return;
    }
    const uint8_t *src;
    uint32_t total;
    if (index == OD_AUDIO_INDEX) {
#if OD_WITH_FRONTEND
        src = (const uint8_t *)g_features;
        total = g_feat_frames * OD_FE_CHANNELS * 2u;
#else
        send_error(seq, OD_E_BAD_INDEX, index, "no frontend");
        return;
#endif
    } else {
        if (!g_model) {
            send_error(seq, OD_E_NO_MODEL, 0, "no model");
            return;
        }
        if (index >= g_model->n_outputs) {
            send_error(seq, OD_E_BAD_INDEX, index, "output index");
            return;
        }
        src = (const uint8_t *)od_model_output(index);
        total = g_model->outputs[index].bytes;
    }
    if (offset > total) {
        send_error(seq, OD_E_BAD_INDEX, total, "offset past the end");
        return;
    }
    uint32_t left = total - offset;
    if (length < left) left = length;
    uint32_t per = g_max_payload - 9u;
    do {
        uint32_t n = left < per ? left : per;
        left -= n;
        reply_begin();
        od_w_u8(&g_w, index);
        od_w_u32(&g_w, total);
        od_w_u32(&g_w, offset);
        od_w_bytes(&g_w, src + offset, n);
        reply_send(OD_MSG_GET_OUTPUT | OD_REPLY_BIT, left ? OD_FLAG_MORE : 0, seq);
        offset += n;
    } while (left);
}

static void handle_get_memory(uint16_t seq)
{
    uint32_t stack_total = od_stack_size();
    uint32_t stack_hw = OD_UNKNOWN_U32;
    if (stack_total) stack_hw = g_stack_measured ? g_stack_hw : od_stack_high_water();
    uint32_t static_ram = port_static_ram_bytes();
    uint32_t peak = OD_UNKNOWN_U32;
    /* Whole-agent peak: .data + .bss (the arena lives there) + the deepest the stack got. */
    if (static_ram != OD_UNKNOWN_U32 && stack_hw != OD_UNKNOWN_U32) peak = static_ram + stack_hw;
    uint32_t arena = g_model ? g_model->arena_bytes : OD_UNKNOWN_U32;
    reply_begin();
    od_w_u32(&g_w, peak);
    od_w_u32(&g_w, arena);
    od_w_u32(&g_w, arena);
    od_w_u32(&g_w, stack_total ? stack_total : OD_UNKNOWN_U32);
    od_w_u32(&g_w, stack_hw);
    od_w_u32(&g_w, port_flash_used_bytes());
    od_w_u32(&g_w, g_model ? g_model->flash_weight_bytes : OD_UNKNOWN_U32);
    od_w_u32(&g_w, 0); /* no heap: static arenas only */
    reply_send(OD_MSG_GET_MEMORY | OD_REPLY_BIT, 0, seq);
}

static void handle_get_op_timings(uint16_t seq, od_r_t *r)
{
    uint16_t first = od_r_u16(r);
    if (r->short_read) {
        send_error(seq, OD_E_BAD_PAYLOAD, 0, "short GET_OP_TIMINGS");
        return;
    }
    if (!g_model) {
        send_error(seq, OD_E_NO_MODEL, 0, "no model");
        return;
    }
    if (!g_op_valid) {
        send_error(seq, OD_E_BAD_INDEX, 0, "no RUN with op timings yet");
        return;
    }
    uint32_t total = g_model->n_ops < OD_MAX_OPS ? g_model->n_ops : OD_MAX_OPS;
    if (first > total) {
        send_error(seq, OD_E_BAD_INDEX, total, "op index");
        return;
    }
    uint32_t op = first;
    do {
        reply_begin();
        od_w_u8(&g_w, OD_PORT_TIMER_UNIT);
        od_w_u16(&g_w, (uint16_t)total);
        od_w_u16(&g_w, (uint16_t)op);
        uint16_t count_at = g_w.len;
        od_w_u8(&g_w, 0);
        uint8_t count = 0;
        while (op < total && count < 255u) {
            const char *name = od_model_op_name(op);
            size_t nl = name ? strlen(name) : 0;
            if (nl > OD_NAME_MAX) nl = OD_NAME_MAX;
            if ((size_t)g_w.len + 9u + nl > g_w.cap) break;
            od_w_u64(&g_w, g_op_time[op]);
            od_w_str8(&g_w, name ? name : "", OD_NAME_MAX);
            op++;
            count++;
        }
        g_w.p[count_at] = count;
        reply_send(OD_MSG_GET_OP_TIMINGS | OD_REPLY_BIT, op < total ? OD_FLAG_MORE : 0, seq);
    } while (op < total);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* dispatch */

static void handle_frame(const od_frame_t *f)
{
    od_r_t r;
    od_r_init(&r, f->payload, f->len);
    if (f->version != OD_PROTO_VERSION) {
        send_error(f->seq, OD_E_UNSUPPORTED_VERSION, OD_PROTO_VERSION, "version");
        return;
    }
    if (f->len > g_max_payload) { /* PROTOCOL.md 8: a request never exceeds the payload size HELLO agreed */
        send_error(f->seq, OD_E_TOO_LARGE, g_max_payload, "payload");
        return;
    }
    int repeated = g_have_last && f->seq == g_last_seq && f->type == g_last_type;
    g_last_seq = f->seq;
    g_last_type = f->type;
    g_have_last = 1;
    switch (f->type) {
    case OD_MSG_HELLO: handle_hello(f->seq, &r); break;
    case OD_MSG_PING: {
        uint16_t n;
        const uint8_t *p = od_r_rest(&r, &n);
        reply_begin();
        od_w_bytes(&g_w, p, n);
        if (g_w.overflow) send_error(f->seq, OD_E_TOO_LARGE, g_max_payload, "ping");
        else reply_send(OD_MSG_PING | OD_REPLY_BIT, 0, f->seq);
        break;
    }
    case OD_MSG_RESET:
        reply_begin();
        reply_send(OD_MSG_RESET | OD_REPLY_BIT, 0, f->seq);
        port_reset();
        break;
    case OD_MSG_SELECT_BUILTIN_MODEL: handle_select(f->seq, &r); break;
    case OD_MSG_MODEL_INFO: handle_model_info(f->seq); break;
    case OD_MSG_SET_MODE: handle_set_mode(f->seq, &r); break;
    case OD_MSG_SET_INPUT: handle_set_input(f->seq, &r); break;
    case OD_MSG_RUN: handle_run(f->seq, &r, repeated); break;
    case OD_MSG_GET_TIMINGS: handle_get_timings(f->seq, &r); break;
    case OD_MSG_GET_OUTPUT: handle_get_output(f->seq, &r); break;
    case OD_MSG_GET_MEMORY: handle_get_memory(f->seq); break;
    case OD_MSG_GET_OP_TIMINGS: handle_get_op_timings(f->seq, &r); break;
    case OD_MSG_LOAD_MODEL_BEGIN:
    case OD_MSG_LOAD_MODEL_CHUNK:
    case OD_MSG_LOAD_MODEL_END:
        send_error(f->seq, OD_E_UNSUPPORTED, f->type, "models are compiled in: use SELECT_BUILTIN_MODEL");
        break;
    default: send_error(f->seq, OD_E_UNKNOWN_TYPE, f->type, ""); break;
    }
}

void od_agent_feed(uint8_t byte)
{
    od_frame_t f;
    if (od_rx_feed(&g_rx, byte, &f)) handle_frame(&f);
}

uint32_t od_agent_rx_dropped(void) { return od_rx_dropped(&g_rx); }

void od_agent_init(void)
{
    od_rx_init(&g_rx);
    g_max_payload = OD_MAX_PAYLOAD;
    g_have_last = 0;
    g_stack_measured = 0;
    /* The one compiled-in model is selected from boot; if its inputs outgrow the staging buffer, SELECT says so. */
    (void)select_model();
    reply_begin();
    od_w_u8(&g_w, (uint8_t)port_reset_reason());
    od_w_u32(&g_w, port_boot_id());
    static const char banner[] = "ondevice " OD_AGENT_NAME " " OD_AGENT_VERSION " " OD_PORT_BOARD;
    od_w_bytes(&g_w, banner, sizeof banner - 1u);
    od_w_u8(&g_w, ' ');
    od_w_bytes(&g_w, od_model_info()->name, strlen(od_model_info()->name));
    port_putc(0x00); /* terminate whatever half frame or boot text the host holds */
    reply_send(OD_MSG_BOOT, 0, 0);
}
