#include "cjpeg.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

/* libjpeg's default error_exit prints and calls exit(); this manager jumps back into the
   cjpeg_* function that is running instead. */
struct error_manager {
    struct jpeg_error_mgr pub; /* must stay first: libjpeg hands us a pointer to it */
    jmp_buf jump;
    cjpeg_status status;
    char message[JMSG_LENGTH_MAX];
};

struct cjpeg_decoder {
    struct jpeg_decompress_struct cinfo;
    struct error_manager err;
    struct jpeg_progress_mgr progress;
    int max_scans;
    int channels;
};

static void fail(struct error_manager *err, cjpeg_status status, const char *text) {
    err->status = status;
    snprintf(err->message, sizeof err->message, "%s", text);
    longjmp(err->jump, 1);
}

static void on_error(j_common_ptr cinfo) {
    struct error_manager *err = (struct error_manager *)cinfo->err;
    err->status = err->pub.msg_code == JERR_OUT_OF_MEMORY ? CJPEG_NO_MEMORY : CJPEG_ERROR;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

/* Warnings are ignored (Pillow ignores them too), except running out of data: libjpeg would
   pad the image with grey and invent an end marker, Pillow reports a truncated file. */
static void on_message(j_common_ptr cinfo, int level) {
    struct error_manager *err = (struct error_manager *)cinfo->err;
    if (level >= 0) {
        return;
    }
    if (err->pub.msg_code == JWRN_JPEG_EOF) {
        fail(err, CJPEG_TRUNCATED, "the data ends early (truncated file)");
    }
    err->pub.num_warnings++;
}

static void on_progress(j_common_ptr cinfo) {
    struct cjpeg_decoder *decoder = (struct cjpeg_decoder *)cinfo; /* cinfo is the first member */
    if (decoder->max_scans > 0 && decoder->cinfo.input_scan_number > decoder->max_scans) {
        char text[JMSG_LENGTH_MAX];
        snprintf(text, sizeof text, "more than %d progressive scans", decoder->max_scans);
        fail(&decoder->err, CJPEG_TOO_MANY_SCANS, text);
    }
}

static void copy_message(const struct error_manager *err, char *message, size_t message_size) {
    if (message != NULL && message_size > 0) {
        snprintf(message, message_size, "%s", err->message);
    }
}

cjpeg_decoder *cjpeg_open(const unsigned char *data, size_t size, cjpeg_info *info,
                          cjpeg_status *status, char *message, size_t message_size) {
    struct cjpeg_decoder *decoder = calloc(1, sizeof *decoder);
    if (decoder == NULL) {
        *status = CJPEG_NO_MEMORY;
        if (message != NULL && message_size > 0) {
            snprintf(message, message_size, "out of memory");
        }
        return NULL;
    }
    decoder->cinfo.err = jpeg_std_error(&decoder->err.pub);
    decoder->err.pub.error_exit = on_error;
    decoder->err.pub.emit_message = on_message;
    decoder->err.status = CJPEG_OK;
    if (setjmp(decoder->err.jump)) {
        *status = decoder->err.status;
        copy_message(&decoder->err, message, message_size);
        jpeg_destroy_decompress(&decoder->cinfo);
        free(decoder);
        return NULL;
    }
    jpeg_create_decompress(&decoder->cinfo);
    jpeg_mem_src(&decoder->cinfo, data, (unsigned long)size);
    jpeg_read_header(&decoder->cinfo, TRUE);

    switch (decoder->cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        decoder->cinfo.out_color_space = JCS_GRAYSCALE;
        decoder->channels = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        decoder->cinfo.out_color_space = JCS_RGB;
        decoder->channels = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        decoder->cinfo.out_color_space = JCS_CMYK;
        decoder->channels = 4;
        break;
    default: {
        char text[JMSG_LENGTH_MAX];
        snprintf(text, sizeof text, "unsupported JPEG colour space with %d components",
                 decoder->cinfo.num_components);
        fail(&decoder->err, CJPEG_UNSUPPORTED, text);
    }
    }
    info->width = (int)decoder->cinfo.image_width;
    info->height = (int)decoder->cinfo.image_height;
    info->channels = decoder->channels;
    *status = CJPEG_OK;
    return decoder;
}

cjpeg_status cjpeg_decode(cjpeg_decoder *decoder, unsigned char *out, int max_scans,
                          char *message, size_t message_size) {
    if (setjmp(decoder->err.jump)) {
        copy_message(&decoder->err, message, message_size);
        return decoder->err.status;
    }
    decoder->max_scans = max_scans;
    decoder->progress.progress_monitor = on_progress;
    decoder->cinfo.progress = &decoder->progress;
    jpeg_start_decompress(&decoder->cinfo);
    if (decoder->cinfo.output_components != decoder->channels) {
        fail(&decoder->err, CJPEG_UNSUPPORTED, "unexpected number of output components");
    }
    size_t stride = (size_t)decoder->cinfo.output_width * (size_t)decoder->channels;
    while (decoder->cinfo.output_scanline < decoder->cinfo.output_height) {
        JSAMPROW rows[16];
        JDIMENSION first = decoder->cinfo.output_scanline;
        JDIMENSION count = decoder->cinfo.output_height - first;
        if (count > 16) {
            count = 16;
        }
        for (JDIMENSION i = 0; i < count; i++) {
            rows[i] = out + (size_t)(first + i) * stride;
        }
        jpeg_read_scanlines(&decoder->cinfo, rows, count);
    }
    /* Reads up to the end marker, so a file cut after the last scanline is reported too. */
    jpeg_finish_decompress(&decoder->cinfo);
    return CJPEG_OK;
}

void cjpeg_close(cjpeg_decoder *decoder) {
    if (decoder == NULL) {
        return;
    }
    jpeg_destroy_decompress(&decoder->cinfo);
    free(decoder);
}
