/* err.c — messages of the ward error enum. */
#include <ward/err.h>

const char *ward_strerror(enum ward_err err)
{
    switch (err) {
#define WARD__ERR_CASE(name, num, msg) \
    case WARD_ERR_##name:              \
        return msg;
        WARD_ERRORS(WARD__ERR_CASE)
#undef WARD__ERR_CASE
    }
    return "unknown error";
}
