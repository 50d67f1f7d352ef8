/*
 * dtmf_rx_file: run spandsp's DTMF receiver (dtmf_rx, default parameters,
 * as Asterisk and FreeSWITCH use it) over a raw 8 kHz s16le file and print
 * one line per digit: "<sample> <digit>", where <sample> is the number of
 * samples fed when spandsp reported the digit (fed in 8-sample chunks, so
 * to within 1 ms).
 *
 * Only spandsp's public API is called. Build:
 *   gcc -O2 -o dtmf_rx_file dtmf_rx_file.c -lspandsp
 * Usage:
 *   dtmf_rx_file FILE.raw > FILE.spandsp
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <spandsp.h>

#define CHUNK 8

static uint64_t fed;

static void on_digits(void *user_data, const char *digits, int len)
{
    FILE *out = user_data;
    for (int i = 0; i < len; i++)
        fprintf(out, "%" PRIu64 " %c\n", fed, digits[i]);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE.raw (8 kHz s16le)\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (in == NULL) {
        perror(argv[1]);
        return 2;
    }
    dtmf_rx_state_t *rx = dtmf_rx_init(NULL, on_digits, stdout);
    if (rx == NULL) {
        fprintf(stderr, "dtmf_rx_init failed\n");
        return 1;
    }
    int16_t buf[CHUNK];
    size_t n;
    while ((n = fread(buf, sizeof buf[0], CHUNK, in)) > 0) {
        fed += n;
        dtmf_rx(rx, buf, (int) n);
    }
    fclose(in);
    dtmf_rx_free(rx);
    return 0;
}
