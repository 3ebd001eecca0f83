/* The few declarations of DuckDB's stable C extension API (v1) that pass1.c uses.
 *
 * DuckDB's own headers (duckdb.h, duckdb_extension.h: 400 KB) are not installed with the
 * Python package, so the types and the positions of the functions used are copied here
 * from DuckDB 2.0.0's headers. A loadable C extension gets its functions from DuckDB as
 * one struct of function pointers, `duckdb_ext_api_v1`, which only ever grows at the end:
 * a function's position (its index below) never changes for API v1. To check them against
 * another DuckDB's duckdb_extension.h: a function's index is its position among the
 * `(*name)(` members of `duckdb_ext_api_v1` (counted from 0).
 */
#ifndef PYRO_DUCKDB_CAPI_H
#define PYRO_DUCKDB_CAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t idx_t;
typedef enum { DuckDBSuccess = 0, DuckDBError = 1 } duckdb_state;
typedef enum {
    DUCKDB_TYPE_BOOLEAN = 1,
    DUCKDB_TYPE_INTEGER = 4,
    DUCKDB_TYPE_BIGINT = 5,
    DUCKDB_TYPE_DOUBLE = 11,
    DUCKDB_TYPE_VARCHAR = 17,
} duckdb_type;

typedef struct _duckdb_database { void *internal_ptr; } *duckdb_database;
typedef struct _duckdb_connection { void *internal_ptr; } *duckdb_connection;
typedef struct _duckdb_logical_type { void *internal_ptr; } *duckdb_logical_type;
typedef struct _duckdb_data_chunk { void *internal_ptr; } *duckdb_data_chunk;
typedef struct _duckdb_vector { void *internal_ptr; } *duckdb_vector;
typedef struct _duckdb_function_info { void *internal_ptr; } *duckdb_function_info;
typedef struct _duckdb_aggregate_function { void *internal_ptr; } *duckdb_aggregate_function;
typedef struct _duckdb_aggregate_state { void *internal_ptr; } *duckdb_aggregate_state;
typedef struct _duckdb_extension_info { void *internal_ptr; } *duckdb_extension_info;

/* A VARCHAR value: inlined up to 12 bytes, else a pointer to the bytes. */
typedef struct {
    union {
        struct { uint32_t length; char prefix[4]; char *ptr; } pointer;
        struct { uint32_t length; char inlined[12]; } inlined;
    } value;
} duckdb_string_t;

typedef idx_t (*duckdb_aggregate_state_size)(duckdb_function_info info);
typedef void (*duckdb_aggregate_init_t)(duckdb_function_info info, duckdb_aggregate_state state);
typedef void (*duckdb_aggregate_update_t)(duckdb_function_info info, duckdb_data_chunk input,
                                          duckdb_aggregate_state *states);
typedef void (*duckdb_aggregate_combine_t)(duckdb_function_info info, duckdb_aggregate_state *source,
                                           duckdb_aggregate_state *target, idx_t count);
typedef void (*duckdb_aggregate_finalize_t)(duckdb_function_info info, duckdb_aggregate_state *source,
                                            duckdb_vector result, idx_t count, idx_t offset);

struct duckdb_extension_access {
    void (*set_error)(duckdb_extension_info info, const char *error);
    duckdb_database *(*get_database)(duckdb_extension_info info);
    const void *(*get_api)(duckdb_extension_info info, const char *version);
};

/* The API version asked for: the first stable one, which already has aggregates. */
#define PYRO_CAPI_VERSION "v1.2.0"

/* pyro_api[i]: the function at position i of duckdb_ext_api_v1, copied at load time (DuckDB
 * frees its struct after the entry point returns). Only the first PYRO_API_USED are read. */
#define PYRO_API_USED 238
extern void *pyro_api[PYRO_API_USED];
#define PYRO_FN(index, type) ((type)pyro_api[index])

#define duckdb_connect PYRO_FN(3, duckdb_state (*)(duckdb_database, duckdb_connection *))
#define duckdb_disconnect PYRO_FN(6, void (*)(duckdb_connection *))
#define duckdb_string_t_length PYRO_FN(28, uint32_t (*)(duckdb_string_t))
#define duckdb_string_t_data PYRO_FN(29, const char *(*)(duckdb_string_t *))
#define duckdb_create_logical_type PYRO_FN(156, duckdb_logical_type (*)(duckdb_type))
#define duckdb_create_struct_type \
    PYRO_FN(163, duckdb_logical_type (*)(duckdb_logical_type *, const char **, idx_t))
#define duckdb_destroy_logical_type PYRO_FN(184, void (*)(duckdb_logical_type *))
#define duckdb_data_chunk_get_vector PYRO_FN(190, duckdb_vector (*)(duckdb_data_chunk, idx_t))
#define duckdb_data_chunk_get_size PYRO_FN(191, idx_t (*)(duckdb_data_chunk))
#define duckdb_vector_get_data PYRO_FN(194, void *(*)(duckdb_vector))
#define duckdb_vector_get_validity PYRO_FN(195, uint64_t *(*)(duckdb_vector))
#define duckdb_vector_ensure_validity_writable PYRO_FN(196, void (*)(duckdb_vector))
#define duckdb_struct_vector_get_child PYRO_FN(203, duckdb_vector (*)(duckdb_vector, idx_t))
#define duckdb_validity_set_row_invalid PYRO_FN(207, void (*)(uint64_t *, idx_t))
#define duckdb_create_aggregate_function PYRO_FN(226, duckdb_aggregate_function (*)(void))
#define duckdb_destroy_aggregate_function PYRO_FN(227, void (*)(duckdb_aggregate_function *))
#define duckdb_aggregate_function_set_name \
    PYRO_FN(228, void (*)(duckdb_aggregate_function, const char *))
#define duckdb_aggregate_function_add_parameter \
    PYRO_FN(229, void (*)(duckdb_aggregate_function, duckdb_logical_type))
#define duckdb_aggregate_function_set_return_type \
    PYRO_FN(230, void (*)(duckdb_aggregate_function, duckdb_logical_type))
#define duckdb_aggregate_function_set_functions                                                   \
    PYRO_FN(231, void (*)(duckdb_aggregate_function, duckdb_aggregate_state_size,                 \
                          duckdb_aggregate_init_t, duckdb_aggregate_update_t,                     \
                          duckdb_aggregate_combine_t, duckdb_aggregate_finalize_t))
#define duckdb_register_aggregate_function \
    PYRO_FN(233, duckdb_state (*)(duckdb_connection, duckdb_aggregate_function))
#define duckdb_aggregate_function_set_special_handling \
    PYRO_FN(234, void (*)(duckdb_aggregate_function))
#define duckdb_aggregate_function_set_error \
    PYRO_FN(237, void (*)(duckdb_function_info, const char *))

#endif
