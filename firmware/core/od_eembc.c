/* od_eembc.c: the EEMBC / MLPerf Tiny DUT commands (see od_eembc.h) over the compiled-in model.
 *
 * Replies are CRLF-terminated `m-` lines, errors `e-[...]`, and every command ends with `m-ready`. Inputs loaded
 * with `db` are the model's inputs in order, as raw bytes (what SET_INPUT sends); `m-results-[...]` prints every
 * output element dequantized ((q - zero_point) * scale in float32) with 6 decimals, so the host can check it
 * against a RUN's GET_OUTPUT bytes exactly.
 */
#include "od_eembc.h"

#include <string.h>

#include "od_agent.h" /* buffer sizes (OD_INPUT_STAGE_BYTES, OD_MAX_WARMUP) */
#include "od_model_api.h"
#include "od_port.h"

/* Optional port hook: the energy-mode timestamp edge. Boards without a timestamp pin keep this no-op. */
__attribute__((weak)) void port_timestamp_pulse(void) {}

#if OD_WITH_EEMBC

#ifndef OD_EEMBC_DB_BYTES
#define OD_EEMBC_DB_BYTES OD_INPUT_STAGE_BYTES
#endif
#define OD_EEMBC_PROFILE "ulp-mlperf"
_Static_assert(OD_PORT_TIME_PER_SECOND >= 1000000u, "m-lap-us needs a timer of at least 1 MHz");

static char g_line[OD_EEMBC_LINE_MAX];
static uint16_t g_n;
static uint8_t g_in_frame;  /* handing bytes to the agent until the next 0x00 */
static uint8_t g_too_long;  /* the held line outgrew g_line: it is answered with an error at its '%' */
static uint8_t g_text_out;  /* our text went out since the agent last got a byte: a 0x00 goes before its reply */
static uint8_t g_db[OD_EEMBC_DB_BYTES];
static uint32_t g_db_want, g_db_have;
static uint8_t g_have_results;

/* ------------------------------------------------------------------------------------------------------------ */
/* output */

/* Not inlined: the dozens of calls would cost 2.6 KB of flash. */
__attribute__((noinline)) static void put_s(const char *s)
{
    if (!g_text_out) { /* start on a fresh line after the agent's binary frames (BOOT) */
        g_text_out = 1;
        port_putc('\r');
        port_putc('\n');
    }
    while (*s) port_putc((uint8_t)*s++);
}

static void put_u64(uint64_t v)
{
    char b[21];
    int i = 20;
    b[i] = 0;
    do {
        b[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    put_s(b + i);
}

/* Fixed 6 decimals, rounded half away from zero, exactly: the float is m * 2^e, so the digits come from integer
 * shifts (no soft double; the host's expected_results() rounds the same exact value). */
static void put_f6(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4u);
    uint32_t ex = (bits >> 23) & 0xFFu, man = bits & 0x7FFFFFu;
    if (ex == 0xFFu) {
        put_s(man ? "nan" : (bits >> 31) ? "-inf" : "inf");
        return;
    }
    int e = ex ? (int)ex - 150 : -149;
    uint64_t m = ex ? (man | 0x800000u) : man, x = m * 1000000u; /* < 2^44 */
    if (e > 19) { /* |f| >= 2^43: past what 64 bits hold; no dequantized output gets near it */
        put_s((bits >> 31) ? "-inf" : "inf");
        return;
    }
    uint64_t r = e >= 0 ? x << e : (-e >= 45 ? 0u : (x + (1ull << (-e - 1))) >> -e);
    if (r && (bits >> 31)) put_s("-");
    put_u64(r / 1000000u);
    char frac[8] = ".000000";
    uint32_t fr = (uint32_t)(r % 1000000u);
    for (int i = 6; i >= 1; i--) {
        frac[i] = (char)('0' + fr % 10u);
        fr /= 10u;
    }
    put_s(frac);
}

__attribute__((noinline)) static void put_line(const char *s)
{
    put_s(s);
    put_s("\r\n");
}

/* Performance mode prints the time since boot in microseconds; energy mode only pulses the port's pin. */
static void timestamp(void)
{
#if OD_EEMBC_ENERGY
    port_timestamp_pulse();
#else
    put_s("m-lap-us-");
    put_u64(port_time_now() / (OD_PORT_TIME_PER_SECOND / 1000000u));
    put_s("\r\n");
#endif
}

/* ------------------------------------------------------------------------------------------------------------ */
/* commands */

static uint32_t input_bytes(const od_model_info_t *m)
{
    uint32_t n = 0;
    for (int i = 0; i < m->n_inputs; i++) n += m->inputs[i].bytes;
    return n;
}

static int parse_u32(const char **p, uint32_t *out)
{
    const char *s = *p;
    uint32_t v = 0;
    while (*s == ' ') s++;
    if (*s < '0' || *s > '9') return 0;
    while (*s >= '0' && *s <= '9') {
        if (v > 429496728u) return 0;
        v = v * 10u + (uint32_t)(*s++ - '0');
    }
    *p = s;
    *out = v;
    return 1;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void cmd_db(const char *args)
{
    const od_model_info_t *m = od_model_info();
    if (strncmp(args, "load", 4) == 0) {
        const char *p = args + 4;
        uint32_t n;
        if (!parse_u32(&p, &n) || n != input_bytes(m) || n > sizeof g_db) {
            put_s("e-[db load takes the model's input size: ");
            put_u64(input_bytes(m));
            put_line(" bytes]");
            return;
        }
        g_db_want = n;
        g_db_have = 0;
        put_s("m-[Expecting ");
        put_u64(n);
        put_line(" bytes]");
        return;
    }
    size_t len = strlen(args);
    if (g_db_want == 0 || len % 2u || len / 2u > g_db_want - g_db_have) {
        put_line(g_db_want ? "e-[db data: odd length or more than db load announced]" : "e-[db load N first]");
        return;
    }
    for (size_t i = 0; i < len; i += 2u) {
        int hi = hex_val(args[i]), lo = hex_val(args[i + 1u]);
        if (hi < 0 || lo < 0) {
            put_line("e-[db data: not hex]");
            return;
        }
        g_db[g_db_have++] = (uint8_t)(hi << 4 | lo);
    }
    if (g_db_have == g_db_want) put_line("m-load-done");
}

static uint32_t elem_size(uint8_t dtype)
{
#ifdef OD_DTYPE_FLOAT32
    if (dtype == OD_DTYPE_FLOAT32) return 4u;
#endif
    return dtype == OD_DTYPE_INT16 ? 2u : (dtype == OD_DTYPE_INT32 ? 4u : 1u);
}

/* One output element as the runner reads it: the real value the quantized one stands for. */
static float element(const od_tensor_info_t *t, const uint8_t *p, uint32_t i)
{
    int32_t q;
    switch (t->dtype) {
#ifdef OD_DTYPE_FLOAT32
    case OD_DTYPE_FLOAT32: {
        float f;
        memcpy(&f, p + 4u * i, 4u);
        return f;
    }
#endif
    case OD_DTYPE_INT16: {
        int16_t v;
        memcpy(&v, p + 2u * i, 2u);
        q = v;
        break;
    }
    case OD_DTYPE_INT32: memcpy(&q, p + 4u * i, 4u); break;
    case OD_DTYPE_UINT8: q = p[i]; break;
    default: q = (int8_t)p[i]; break;
    }
    return (float)(q - t->zero_point) * t->scale;
}

static void put_results(void)
{
    const od_model_info_t *m = od_model_info();
    put_s("m-results-[");
    for (int k = 0; k < m->n_outputs; k++) {
        const od_tensor_info_t *t = &m->outputs[k];
        const uint8_t *p = (const uint8_t *)od_model_output(k);
        for (uint32_t i = 0; i < t->bytes / elem_size(t->dtype); i++) {
            if (k || i) put_s(",");
            put_f6(element(t, p, i));
        }
    }
    put_line("]");
}

static od_status_t invoke_loaded(void)
{
    const od_model_info_t *m = od_model_info();
    const uint8_t *src = g_db;
    for (int i = 0; i < m->n_inputs; i++) { /* the model may reuse its input buffers: refill each time */
        memcpy(od_model_input(i), src, m->inputs[i].bytes);
        src += m->inputs[i].bytes;
    }
    return od_model_invoke();
}

static void cmd_infer(const char *args)
{
    uint32_t n, w = 0;
    const char *p = args;
    if (!parse_u32(&p, &n) || n == 0 || (*p && !parse_u32(&p, &w)) || w > OD_MAX_WARMUP) {
        put_line("e-[infer N W: N >= 1 inferences after W warm-ups]");
        return;
    }
    if (g_db_want == 0 || g_db_have != g_db_want) {
        put_line("e-[load the input with db load N and db HEX first]");
        return;
    }
    put_s("m-warmup-start-");
    put_u64(w);
    put_s("\r\n");
    for (uint32_t i = 0; i < w; i++) {
        if (invoke_loaded() != OD_OK) goto failed;
    }
    put_line("m-warmup-done");
    put_s("m-infer-start-");
    put_u64(n);
    put_s("\r\n");
    timestamp();
    for (uint32_t i = 0; i < n; i++) {
        if (invoke_loaded() != OD_OK) goto failed;
    }
    timestamp();
    put_line("m-infer-done");
    g_have_results = 1;
    put_results();
    return;
failed:
    g_have_results = 0;
    put_line("e-[invoke failed]");
}

static void run_line(void)
{
    char *s = g_line;
    g_line[g_n] = 0;
    while (*s == ' ' || *s == '\r' || *s == '\n' || *s == '\t' || *s == '%') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\r' || e[-1] == '\n' || e[-1] == '\t')) *--e = 0;
    const char *args = s;
    while (*args && *args != ' ') args++;
    size_t cl = (size_t)(args - s);
    while (*args == ' ') args++;
    if (cl == 4 && !strncmp(s, "name", 4)) {
        put_line("m-name-dut-[ondevice " OD_PORT_BOARD "]");
    } else if (cl == 7 && !strncmp(s, "profile", 7)) {
        put_line("m-profile-[" OD_EEMBC_PROFILE "]");
        put_s("m-model-[");
#ifdef OD_EEMBC_MODEL_ID
        put_s(OD_EEMBC_MODEL_ID); /* the runner picks its input folder by this id (e.g. "kws01") */
#else
        put_s(od_model_info()->name);
#endif
        put_line("]");
    } else if (cl == 4 && !strncmp(s, "help", 4)) {
        put_line("m-[name profile timestamp db load N | db HEX infer N W results help]");
    } else if (cl == 9 && !strncmp(s, "timestamp", 9)) {
        timestamp();
    } else if (cl == 2 && !strncmp(s, "db", 2)) {
        cmd_db(args);
    } else if (cl == 5 && !strncmp(s, "infer", 5)) {
        cmd_infer(args);
    } else if (cl == 7 && !strncmp(s, "results", 7)) {
        if (g_have_results) put_results();
        else put_line("e-[no inference yet: infer N W first]");
    } else {
        put_s("e-[Unknown command: ");
        put_s(s);
        put_line("]");
    }
    put_line("m-ready");
}

/* ------------------------------------------------------------------------------------------------------------ */
/* detection */

static void pass_on(uint8_t b, void (*pass)(uint8_t))
{
    if (g_text_out) { /* end our text as a (garbage, dropped) frame so the host's next frame decodes cleanly */
        g_text_out = 0;
        port_putc(0x00);
    }
    pass(b);
}

static int is_text(uint8_t b) { return (b >= 0x20 && b < 0x7F) || b == '\r' || b == '\n' || b == '\t'; }

static int only_blank(void)
{
    for (uint16_t i = 0; i < g_n; i++) {
        char c = g_line[i];
        if (c != ' ' && c != '\r' && c != '\n' && c != '\t' && c != '%') return 0;
    }
    return 1;
}

void od_eembc_feed(uint8_t b, void (*pass)(uint8_t))
{
    if (g_in_frame) {
        if (b == 0) g_in_frame = 0;
        pass_on(b, pass);
        return;
    }
    if (b == '%' && (g_too_long || !only_blank())) {
        if (g_too_long) {
            put_line("e-[command too long]");
            put_line("m-ready");
        } else {
            run_line();
        }
        g_n = 0;
        g_too_long = 0;
        return;
    }
    if (is_text(b)) {
        /* Text this long is no frame (a frame's second byte is 0x01): drop it, answer at its '%'. */
        if (g_n < OD_EEMBC_LINE_MAX - 1u) g_line[g_n++] = (char)b;
        else g_too_long = 1;
        return;
    }
    /* Not a command line: the agent gets every held byte, then this one, exactly as they arrived. */
    if (!g_too_long) {
        for (uint16_t i = 0; i < g_n; i++) pass_on((uint8_t)g_line[i], pass);
    }
    g_n = 0;
    g_too_long = 0;
    g_in_frame = (b != 0);
    pass_on(b, pass);
}

#else

void od_eembc_feed(uint8_t b, void (*pass)(uint8_t)) { pass(b); }

#endif /* OD_WITH_EEMBC */
