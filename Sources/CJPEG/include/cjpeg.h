#ifndef CJPEG_H
#define CJPEG_H

#include <stddef.h>

/* A small wrapper over libjpeg's decompressor that never calls exit(): libjpeg errors are
   caught with setjmp/longjmp inside these functions and come back as a status code plus a
   message. Decoding uses libjpeg's defaults (ISLOW DCT, fancy upsampling), as Pillow does. */

typedef enum {
    CJPEG_OK = 0,
    CJPEG_ERROR = 1,          /* libjpeg rejected the data; see message */
    CJPEG_TRUNCATED = 2,      /* the data ended before the last scanline */
    CJPEG_UNSUPPORTED = 3,    /* a colour space or component count that is not decoded */
    CJPEG_TOO_MANY_SCANS = 4, /* a progressive file with more scans than allowed */
    CJPEG_NO_MEMORY = 5
} cjpeg_status;

typedef struct {
    int width;
    int height;
    /* 1 = greyscale, 3 = RGB, 4 = CMYK exactly as stored (Adobe files store it inverted) */
    int channels;
} cjpeg_info;

typedef struct cjpeg_decoder cjpeg_decoder;

/* Reads the headers of the JPEG in data[0..<size]. The data must stay alive until
   cjpeg_close. On failure returns NULL and writes a status to *status and a one-line message
   (at most message_size bytes including the terminator). */
cjpeg_decoder *cjpeg_open(const unsigned char *data, size_t size, cjpeg_info *info,
                          cjpeg_status *status, char *message, size_t message_size);

/* Decodes all scanlines into out (width * height * channels bytes, rows top to bottom).
   max_scans bounds the number of scans a progressive file may have (0 = no bound). */
cjpeg_status cjpeg_decode(cjpeg_decoder *decoder, unsigned char *out, int max_scans,
                          char *message, size_t message_size);

/* Releases the decoder; safe to call with NULL. */
void cjpeg_close(cjpeg_decoder *decoder);

#endif
