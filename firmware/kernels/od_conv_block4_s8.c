/* od_conv_block4_s8.c: the channel-pair loop of the im2col CONV_2D's four-pixel block (od_conv_im2col_s8.c) in
 * Thumb-2 assembly, for D % 4 == 0 and od_requant_fast. Per channel: the bias into four accumulators, an eight-group
 * unrolled SMLAD loop entered part-way for G % 8 (13 instructions per 16 MACs), then the four outputs requantized
 * (SMMULR, one SSAT each) and stored at the pixels' stride, or with a clamp the pair's eight packed into two
 * words, clamped lane-wise (SSUB8/SEL) and stored as one halfword per pixel.
 * Registers: r0-r3 accumulators, r4/r5 weights, r6 field pointer, r7 weight pointer, r8-r11 field words (LDM),
 * r12 loop count, lr the state (od_block4_ctx_t); every other value is one load from it. Bit-exact with the C
 * block (dot4x1_q15 + store4): the same integer sums and od_requant_fast_s8. */
#include "od_im2col_common.h"
#include "od_simd.h"

#if OD_SIMD_NATIVE
/* One group of four depths of the four pixels: 13 instructions, all 32-bit (52 bytes, ctx.skip counts them). */
#define OD_B4_GROUP                    \
    "ldr.w r4, [r7], #8\n\t"           \
    "ldmia.w r6!, {r8-r11}\n\t"        \
    "sxtb16 r5, r4\n\t"                \
    "sxtb16 r4, r4, ror #8\n\t"        \
    "smlad r0, r5, r8, r0\n\t"         \
    "smlad r1, r5, r9, r1\n\t"         \
    "smlad r2, r5, r10, r2\n\t"        \
    "smlad r3, r5, r11, r3\n\t"        \
    "ldmia.w r6!, {r8-r11}\n\t"        \
    "smlad r0, r4, r8, r0\n\t"         \
    "smlad r1, r4, r9, r1\n\t"         \
    "smlad r2, r4, r10, r2\n\t"        \
    "smlad r3, r4, r11, r3\n\t"

/* od_requant_fast_s8 of accumulator R: m in r12, ~shift in r11, rnd in r10. */
#define OD_B4_RQ(R)                                                                                             \
    "lsl " R ", " R ", #1\n\t"                                                                                  \
    "smmulr " R ", " R ", r12\n\t"                                                                              \
    "add " R ", " R ", " R ", asr #31\n\t"                                                                      \
    "asr " R ", " R ", r11\n\t"                                                                                 \
    "add " R ", " R ", r10\n\t"                                                                                 \
    "ssat " R ", #8, " R ", asr #1\n\t"

/* The first channel's accumulators from bias[o] (the second's bias is loaded by the first: no read past the end). */
#define OD_B4_BIAS                                                                                              \
    "ldr r4, [lr, #8]\n\t"                                                                                      \
    "ldr r0, [r4], #4\n\t"                                                                                      \
    "str r4, [lr, #8]\n\t"

/* One channel from its bias in r0: the dot loop (entry at [lr, ENTRY], labels L), then the requantization with
 * r4-r6 = the mult, shift and bias pointers (advanced past this channel's mult and shift). */
#define OD_B4_CHANNEL(ENTRY, L)                                                                                 \
    "mov r1, r0\n\t"                                                                                            \
    "mov r2, r0\n\t"                                                                                            \
    "mov r3, r0\n\t"                                                                                            \
    "ldrd r6, r12, [lr, #40]\n\t"                                                                               \
    "ldr pc, [lr, #" ENTRY "]\n\t"                                                                              \
    L ":\n\t" OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP OD_B4_GROUP   \
    "subs r12, r12, #1\n\t"                                                                                     \
    "bne " L "b\n\t"                                                                                            \
    "ldm lr, {r4, r5, r6, r10}\n\t"                                                                             \
    "ldr r12, [r4], #4\n\t"                                                                                     \
    "ldr r11, [r5], #4\n\t"                                                                                     \
    "mvn r11, r11\n\t" OD_B4_RQ("r0") OD_B4_RQ("r1") OD_B4_RQ("r2") OD_B4_RQ("r3")

/* Pixels 1-3 and 0 of the channel stored as bytes (y advances by one channel). */
#define OD_B4_STORE                \
    "ldrd r8, r9, [lr, #16]\n\t"   \
    "ldrd r10, r11, [lr, #24]\n\t" \
    "strb r1, [r8, r9]\n\t"        \
    "strb r2, [r8, r10]\n\t"       \
    "strb r3, [r8, r11]\n\t"       \
    "strb r0, [r8], #1\n\t"        \
    "str r8, [lr, #16]\n\t"

/* Clamped: channel o's four outputs wait in the state as two words [p0 . p1 .] [p2 . p3 .] ... */
#define OD_B4_HOLD                         \
    "pkhbt r0, r0, r1, lsl #16\n\t"       \
    "pkhbt r2, r2, r3, lsl #16\n\t"       \
    "strd r0, r2, [lr, #72]\n\t"

/* ... channel o + 1's fill the gaps, both words are clamped to [lo, hi] per byte (SSUB8/SEL) and each pixel's
 * two channels go out as one halfword (y advances by two channels). */
#define OD_B4_CLAMP_STORE2                 \
    "ldrd r4, r5, [lr, #72]\n\t"          \
    "bfi r4, r0, #8, #8\n\t"              \
    "bfi r4, r1, #24, #8\n\t"             \
    "bfi r5, r2, #8, #8\n\t"              \
    "bfi r5, r3, #24, #8\n\t"             \
    "ldrd r0, r1, [lr, #32]\n\t"          \
    "ssub8 r2, r4, r0\n\t"                \
    "sel r4, r4, r0\n\t"                  \
    "ssub8 r2, r1, r4\n\t"                \
    "sel r4, r4, r1\n\t"                  \
    "ssub8 r2, r5, r0\n\t"                \
    "sel r5, r5, r0\n\t"                  \
    "ssub8 r2, r1, r5\n\t"                \
    "sel r5, r5, r1\n\t"                  \
    "ldrd r8, r9, [lr, #16]\n\t"          \
    "ldrd r10, r11, [lr, #24]\n\t"        \
    "lsrs r0, r4, #16\n\t"                \
    "strh r0, [r8, r9]\n\t"               \
    "strh r5, [r8, r10]\n\t"              \
    "lsrs r1, r5, #16\n\t"                \
    "strh r1, [r8, r11]\n\t"              \
    "strh r4, [r8], #2\n\t"               \
    "str r8, [lr, #16]\n\t"

/* Entry addresses (loop start + skip, Thumb bit set), then per pair: channel o (its outputs stored or held,
 * then o + 1's bias loaded), step back to o + 1's first group, channel o + 1, step to the next pair until y
 * (r8 after the stores) reaches the end. */
#define OD_B4_PAIRS(POST0, POST1)                                                                                     \
    "push {r4-r11, lr}\n\t"                                                                                     \
    "mov lr, r0\n\t"                                                                                            \
    "ldr r5, [lr, #64]\n\t"                                                                                     \
    "adr.w r4, 30f\n\t"                                                                                         \
    "add r4, r4, r5\n\t"                                                                                        \
    "orr r4, r4, #1\n\t"                                                                                        \
    "str r4, [lr, #48]\n\t"                                                                                     \
    "adr.w r4, 40f\n\t"                                                                                         \
    "add r4, r4, r5\n\t"                                                                                        \
    "orr r4, r4, #1\n\t"                                                                                        \
    "str r4, [lr, #68]\n\t"                                                                                     \
    "ldr r7, [lr, #60]\n\t"                                                                                     \
    "20:\n\t" OD_B4_BIAS OD_B4_CHANNEL("48", "30") POST0                                                    \
    "ldr r0, [r6], #4\n\t"                                                                                      \
    "stm lr, {r4, r5, r6}\n\t"                                                                                  \
    "ldr r4, [lr, #52]\n\t"                                                                                     \
    "subs r7, r7, r4\n\t" OD_B4_CHANNEL("68", "40") "stm lr, {r4, r5}\n\t" POST1                             \
    "subs r7, r7, #4\n\t"                                                                                       \
    "ldr r4, [lr, #56]\n\t"                                                                                     \
    "cmp r8, r4\n\t"                                                                                            \
    "bne 20b\n\t"                                                                                               \
    "pop {r4-r11, pc}\n\t"

__attribute__((naked, noinline)) void od_block4_pairs_s8(od_block4_ctx_t *c) {
    (void)c;
    __asm__ volatile(".align 2\n\t" OD_B4_PAIRS(OD_B4_STORE, OD_B4_STORE));
}

__attribute__((naked, noinline)) void od_block4_pairs_clamp_s8(od_block4_ctx_t *c) {
    (void)c;
    __asm__ volatile(".align 2\n\t" OD_B4_PAIRS(OD_B4_HOLD, OD_B4_CLAMP_STORE2));
}
#endif
