/* pyro_pass1: the batch engine's pass 1 as one DuckDB aggregate (see duckdb_batch.py).
 *
 *   pyro_pass1(k INTEGER, ts_us BIGINT, spec VARCHAR) -> STRUCT(engagement DOUBLE,
 *       counted BIGINT, last_us BIGINT, timed BIGINT, x0 .. x3 BIGINT,
 *       stage INTEGER, tie BOOLEAN, suppressed BOOLEAN, o0 .. o7 BIGINT)
 *
 * The SQL pass 1 runs seven aggregates per lead (decayed points, three proof words, the
 * count and tally, the latest time, the timed rows) over per-row columns read from a join
 * on the event's key `k`; DuckDB pays for each aggregate and each per-row expression over
 * every event. Here one update reads two columns, looks the key up in a small table and
 * does all of it: the same numbers with a third fewer instructions.
 *
 * It also takes the rare events that pass 2a would read in a second scan: the stage of the
 * latest lifecycle event, whether an event suppresses the lead, and the time of the first
 * event of each `once` rule (o0 ..: the engine turns them into points, as in SQL).
 *
 * `spec` (the same constant on every row) describes the playbook, as text:
 *   id step_us as_of_step half_life nkeys nonce
 *   then per key k = 0 .. nkeys-1:  points count stage suppress once_mask nbins,
 *                                    then nbins times: word one width bins win_us
 * (decimal integers; the doubles `half_life` and `points` as the integers with their bits,
 * exact and free of the C library's locale). Per event of key k:
 *   engagement += points * 2 ** (-(as_of_step - floor(ts / step_us)) / half_life)
 *   counted    += count          (1 + the proof's tally << 32, as the SQL's sum(count))
 *   x[word]    += one << (width * (floor(ts / win_us) mod bins))  per bin (win_us 0: window 0)
 *   stage      := the key's stage (>= 0) if the event is the latest with a stage
 *   suppressed |= suppress;  first[i] := min(first[i], ts) for each bit i of once_mask
 * `id` is ID_LEN characters that differ between different specs (a hash of the rest): a
 * thread compares only those with the spec it parsed last, not the whole text (which
 * grows with the number of event names) on every chunk of 2,048 rows.
 * Rows without a time add only `count` (as in SQL, where the other terms are NULL).
 * Words are summed modulo 2**64: the proof only reads their low 63 bits.
 * Two lifecycle events at the same latest time with different stages set `tie`: SQL
 * orders them by event id, which this aggregate does not read, so the engine then takes
 * the rare events in SQL.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duckdb_capi.h"

#define MAX_WORDS 4
#define MAX_ONCE 8
#define MEMO 4096 /* decay factors of the last MEMO steps (days) are computed once per thread */
#define ID_LEN 32

void *pyro_api[PYRO_API_USED];

typedef struct {
    double engagement;
    int64_t counted, last_us, timed;
    uint64_t words[MAX_WORDS];
    int64_t stage_us;           /* time of the latest lifecycle event */
    int64_t first[MAX_ONCE];    /* time of each once rule's first event */
    int32_t stage;              /* its stage; -1: none yet */
    uint16_t once_seen;         /* bit i: first[i] is set */
    int8_t engaged, timed_any, tie, suppressed;
} state_t;

typedef struct {
    int32_t word, width, bins;
    int64_t one, win_us;
} bin_t;

typedef struct {
    double points;
    int64_t count;
    int32_t nbins, first; /* its bins are bins[first .. first + nbins) */
    int32_t stage;        /* -1: not a lifecycle event */
    int32_t once_mask;
    int8_t suppress;
} key_t_;

typedef struct {
    char *text; /* the spec it was parsed from */
    uint32_t len;
    int64_t step_us, as_of_step;
    double half_life;
    int32_t nkeys, nonce;
    key_t_ *keys;
    bin_t *bins;
    double memo[MEMO]; /* memo[age]: decay factor of an event `age` steps old; < 0: not yet */
} spec_t;

/* One parsed spec per DuckDB worker thread, so that no lock is needed; re-parsed when a
 * query passes another spec. Freed when replaced (a thread's last one lives as long as the
 * thread: tens of KB, at most a few MB with MAX_KEYS keys). */
static _Thread_local spec_t *current;

static void free_spec(spec_t *s) {
    if (s) {
        free(s->text);
        free(s->keys);
        free(s->bins);
        free(s);
    }
}

static int next_int(char **p, int64_t *out) {
    char *end;
    *out = strtoll(*p, &end, 10);
    if (end == *p) return 0;
    *p = end;
    return 1;
}

static int next_double(char **p, double *out) {
    int64_t bits;
    if (!next_int(p, &bits)) return 0;
    memcpy(out, &bits, sizeof bits);
    return 1;
}

static spec_t *parse_spec(const char *text, uint32_t len) {
    spec_t *s = calloc(1, sizeof(spec_t));
    int64_t nkeys, nonce, v, stage, suppress, mask;
    int nbins = 0, cap = 0;
    if (!s || !(s->text = malloc(len + 1))) goto fail;
    memcpy(s->text, text, len);
    s->text[len] = 0;
    s->len = len;
    if (len < ID_LEN) goto fail;
    char *p = s->text + ID_LEN;
    if (!next_int(&p, &s->step_us) || !next_int(&p, &s->as_of_step) ||
        !next_double(&p, &s->half_life) || !next_int(&p, &nkeys) || !next_int(&p, &nonce) ||
        s->step_us <= 0 || nkeys < 0 || nkeys > (1 << 24) || nonce < 0 || nonce > MAX_ONCE)
        goto fail;
    s->nkeys = (int32_t)nkeys;
    s->nonce = (int32_t)nonce;
    if (!(s->keys = calloc(nkeys + 1, sizeof(key_t_)))) goto fail;
    for (int32_t k = 0; k < s->nkeys; k++) {
        key_t_ *key = &s->keys[k];
        if (!next_double(&p, &key->points) || !next_int(&p, &key->count) ||
            !next_int(&p, &stage) || !next_int(&p, &suppress) || !next_int(&p, &mask) ||
            !next_int(&p, &v) || stage < -1 || stage > 1000 || mask < 0 ||
            mask >= (1 << s->nonce) || v < 0 || v > MAX_WORDS * 64)
            goto fail;
        key->stage = (int32_t)stage;
        key->suppress = suppress != 0;
        key->once_mask = (int32_t)mask;
        key->nbins = (int32_t)v;
        key->first = nbins;
        for (int32_t b = 0; b < key->nbins; b++) {
            if (nbins == cap) {
                cap = cap ? 2 * cap : 64;
                bin_t *grown = realloc(s->bins, cap * sizeof(bin_t));
                if (!grown) goto fail;
                s->bins = grown;
            }
            bin_t *bin = &s->bins[nbins++];
            int64_t word, width, bins;
            if (!next_int(&p, &word) || !next_int(&p, &bin->one) || !next_int(&p, &width) ||
                !next_int(&p, &bins) || !next_int(&p, &bin->win_us) || word < 0 ||
                word >= MAX_WORDS || width < 0 || width > 63 || bins < 1 || bin->win_us < 0 ||
                width * (bins - 1) > 63) /* the shift below stays within a word */
                goto fail;
            bin->word = (int32_t)word;
            bin->width = (int32_t)width;
            bin->bins = (int32_t)bins;
        }
    }
    for (int i = 0; i < MEMO; i++) s->memo[i] = -1.0;
    return s;
fail:
    free_spec(s);
    return NULL;
}

/* Floored division and modulo: times before 1970 are negative. */
static inline int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static inline int64_t floor_mod(int64_t a, int64_t b) {
    int64_t r = a % b;
    return (r != 0 && (r < 0) != (b < 0)) ? r + b : r;
}

/* The SQL path's pow(2.0, -(as_of_step - step) / half_life), bit for bit (same libm pow). */
static inline double decay(spec_t *s, int64_t step) {
    int64_t age = s->as_of_step - step;
    if (age >= 0 && age < MEMO) {
        if (s->memo[age] < 0) s->memo[age] = pow(2.0, (double)(-age) / s->half_life);
        return s->memo[age];
    }
    return pow(2.0, (double)(-age) / s->half_life);
}

static inline int is_valid(const uint64_t *validity, idx_t row) {
    return !validity || (validity[row >> 6] >> (row & 63)) & 1;
}

/* A lifecycle event (or another thread's latest one) at time t with stage `stage`. */
static inline void take_stage(state_t *st, int64_t t, int32_t stage, int8_t tie) {
    if (st->stage < 0 || t > st->stage_us) {
        st->stage_us = t;
        st->stage = stage;
        st->tie = tie;
    } else if (t == st->stage_us) {
        st->tie |= tie | (stage != st->stage);
    }
}

static idx_t state_size(duckdb_function_info info) {
    (void)info;
    return sizeof(state_t);
}

static void state_init(duckdb_function_info info, duckdb_aggregate_state state) {
    (void)info;
    memset(state, 0, sizeof(state_t));
    ((state_t *)state)->stage = -1;
}

static void update(duckdb_function_info info, duckdb_data_chunk input,
                   duckdb_aggregate_state *states) {
    idx_t n = duckdb_data_chunk_get_size(input);
    if (n == 0) return;
    duckdb_vector key_vec = duckdb_data_chunk_get_vector(input, 0);
    duckdb_vector ts_vec = duckdb_data_chunk_get_vector(input, 1);
    duckdb_vector spec_vec = duckdb_data_chunk_get_vector(input, 2);
    const int32_t *keys = duckdb_vector_get_data(key_vec);
    const int64_t *ts = duckdb_vector_get_data(ts_vec);
    const uint64_t *key_ok = duckdb_vector_get_validity(key_vec);
    const uint64_t *ts_ok = duckdb_vector_get_validity(ts_vec);
    duckdb_string_t *spec_text = duckdb_vector_get_data(spec_vec);
    if (!is_valid(duckdb_vector_get_validity(spec_vec), 0)) {
        duckdb_aggregate_function_set_error(info, "pyro_pass1: the spec is NULL");
        return;
    }
    uint32_t len = duckdb_string_t_length(spec_text[0]);
    const char *text = duckdb_string_t_data(&spec_text[0]);
    spec_t *s = current;
    if (!s || s->len != len || len < ID_LEN || memcmp(s->text, text, ID_LEN) != 0) {
        free_spec(s);
        s = current = parse_spec(text, len);
        if (!s) {
            duckdb_aggregate_function_set_error(info, "pyro_pass1: malformed spec");
            return;
        }
    }
    for (idx_t i = 0; i < n; i++) {
        if (!is_valid(key_ok, i)) continue; /* as the SQL's inner join on the key */
        int32_t k = keys[i];
        if (k < 0 || k >= s->nkeys) {
            duckdb_aggregate_function_set_error(info, "pyro_pass1: key out of range");
            return;
        }
        state_t *st = (state_t *)states[i];
        const key_t_ *key = &s->keys[k];
        st->counted += key->count;
        if (!is_valid(ts_ok, i)) continue;
        int64_t t = ts[i];
        if (!st->timed_any || t > st->last_us) st->last_us = t;
        st->timed_any = 1;
        st->timed++;
        st->engagement += key->points * decay(s, floor_div(t, s->step_us));
        st->engaged = 1;
        for (int32_t b = 0; b < key->nbins; b++) {
            const bin_t *bin = &s->bins[key->first + b];
            int64_t window = bin->win_us ? floor_div(t, bin->win_us) : 0;
            st->words[bin->word] += (uint64_t)bin->one << (bin->width * floor_mod(window, bin->bins));
        }
        if (key->stage >= 0) take_stage(st, t, key->stage, 0);
        st->suppressed |= key->suppress;
        for (int32_t mask = key->once_mask, j = 0; mask; mask >>= 1, j++) {
            if ((mask & 1) && (!(st->once_seen >> j & 1) || t < st->first[j])) st->first[j] = t;
            st->once_seen |= (uint16_t)((mask & 1) << j);
        }
    }
}

static void combine(duckdb_function_info info, duckdb_aggregate_state *source,
                    duckdb_aggregate_state *target, idx_t count) {
    (void)info;
    for (idx_t i = 0; i < count; i++) {
        const state_t *a = (const state_t *)source[i];
        state_t *b = (state_t *)target[i];
        b->engagement += a->engagement;
        b->engaged |= a->engaged;
        b->counted += a->counted;
        b->timed += a->timed;
        if (a->timed_any && (!b->timed_any || a->last_us > b->last_us)) b->last_us = a->last_us;
        b->timed_any |= a->timed_any;
        for (int w = 0; w < MAX_WORDS; w++) b->words[w] += a->words[w];
        if (a->stage >= 0) take_stage(b, a->stage_us, a->stage, a->tie);
        b->suppressed |= a->suppressed;
        for (int j = 0; j < MAX_ONCE; j++) {
            if ((a->once_seen >> j & 1) && (!(b->once_seen >> j & 1) || a->first[j] < b->first[j]))
                b->first[j] = a->first[j];
        }
        b->once_seen |= a->once_seen;
    }
}

#define FIELDS (4 + MAX_WORDS + 3 + MAX_ONCE)

static void finalize(duckdb_function_info info, duckdb_aggregate_state *source,
                     duckdb_vector result, idx_t count, idx_t offset) {
    (void)info;
    duckdb_vector child[FIELDS];
    for (int c = 0; c < FIELDS; c++) child[c] = duckdb_struct_vector_get_child(result, c);
    duckdb_vector_ensure_validity_writable(child[4 + MAX_WORDS]);
    uint64_t *stage_ok = duckdb_vector_get_validity(child[4 + MAX_WORDS]);
    int32_t *stage = duckdb_vector_get_data(child[4 + MAX_WORDS]);
    bool *tie = duckdb_vector_get_data(child[5 + MAX_WORDS]);
    bool *suppressed = duckdb_vector_get_data(child[6 + MAX_WORDS]);
    uint64_t *first_ok[MAX_ONCE];
    int64_t *first[MAX_ONCE];
    for (int i = 0; i < MAX_ONCE; i++) {
        duckdb_vector_ensure_validity_writable(child[7 + MAX_WORDS + i]);
        first_ok[i] = duckdb_vector_get_validity(child[7 + MAX_WORDS + i]);
        first[i] = duckdb_vector_get_data(child[7 + MAX_WORDS + i]);
    }
    duckdb_vector_ensure_validity_writable(child[0]);
    duckdb_vector_ensure_validity_writable(child[2]);
    uint64_t *engagement_ok = duckdb_vector_get_validity(child[0]);
    uint64_t *last_ok = duckdb_vector_get_validity(child[2]);
    double *engagement = duckdb_vector_get_data(child[0]);
    int64_t *counted = duckdb_vector_get_data(child[1]);
    int64_t *last_us = duckdb_vector_get_data(child[2]);
    int64_t *timed = duckdb_vector_get_data(child[3]);
    int64_t *words[MAX_WORDS];
    for (int w = 0; w < MAX_WORDS; w++) words[w] = duckdb_vector_get_data(child[4 + w]);
    for (idx_t i = 0; i < count; i++) {
        const state_t *st = (const state_t *)source[i];
        idx_t row = offset + i;
        /* NULL where SQL's sum and max are NULL: no row had a time */
        engagement[row] = st->engagement;
        if (!st->engaged) duckdb_validity_set_row_invalid(engagement_ok, row);
        last_us[row] = st->last_us;
        if (!st->timed_any) duckdb_validity_set_row_invalid(last_ok, row);
        counted[row] = st->counted;
        timed[row] = st->timed;
        for (int w = 0; w < MAX_WORDS; w++) words[w][row] = (int64_t)(st->words[w] & INT64_MAX);
        stage[row] = st->stage;
        if (st->stage < 0) duckdb_validity_set_row_invalid(stage_ok, row);
        tie[row] = st->tie;
        suppressed[row] = st->suppressed;
        for (int j = 0; j < MAX_ONCE; j++) {
            first[j][row] = st->first[j];
            if (!(st->once_seen >> j & 1)) duckdb_validity_set_row_invalid(first_ok[j], row);
        }
    }
}

static bool register_pass1(duckdb_connection con) {
    duckdb_logical_type integer = duckdb_create_logical_type(DUCKDB_TYPE_INTEGER);
    duckdb_logical_type bigint = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
    duckdb_logical_type dbl = duckdb_create_logical_type(DUCKDB_TYPE_DOUBLE);
    duckdb_logical_type varchar = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
    duckdb_logical_type boolean = duckdb_create_logical_type(DUCKDB_TYPE_BOOLEAN);
    duckdb_logical_type types[FIELDS] = {dbl, bigint, bigint, bigint};
    char labels[FIELDS][16];
    const char *names[FIELDS];
    const char *fixed[] = {"engagement", "counted", "last_us", "timed"};
    const char *rare[] = {"stage", "tie", "suppressed"};
    for (int c = 0; c < FIELDS; c++) {
        if (c < 4) snprintf(labels[c], sizeof labels[c], "%s", fixed[c]);
        else if (c < 4 + MAX_WORDS) snprintf(labels[c], sizeof labels[c], "x%d", c - 4);
        else if (c < 7 + MAX_WORDS) snprintf(labels[c], sizeof labels[c], "%s", rare[c - 4 - MAX_WORDS]);
        else snprintf(labels[c], sizeof labels[c], "o%d", c - 7 - MAX_WORDS);
        names[c] = labels[c];
    }
    for (int w = 0; w < MAX_WORDS; w++) types[4 + w] = bigint;
    types[4 + MAX_WORDS] = integer;
    types[5 + MAX_WORDS] = boolean;
    types[6 + MAX_WORDS] = boolean;
    for (int i = 0; i < MAX_ONCE; i++) types[7 + MAX_WORDS + i] = bigint;
    duckdb_logical_type out = duckdb_create_struct_type(types, names, FIELDS);

    duckdb_aggregate_function f = duckdb_create_aggregate_function();
    duckdb_aggregate_function_set_name(f, "pyro_pass1");
    duckdb_aggregate_function_add_parameter(f, integer);
    duckdb_aggregate_function_add_parameter(f, bigint);
    duckdb_aggregate_function_add_parameter(f, varchar);
    duckdb_aggregate_function_set_return_type(f, out);
    duckdb_aggregate_function_set_functions(f, state_size, state_init, update, combine, finalize);
    /* NULL inputs reach update(), which treats them as the SQL path does */
    duckdb_aggregate_function_set_special_handling(f);
    duckdb_state registered = duckdb_register_aggregate_function(con, f);

    duckdb_destroy_aggregate_function(&f);
    duckdb_destroy_logical_type(&out);
    duckdb_destroy_logical_type(&integer);
    duckdb_destroy_logical_type(&bigint);
    duckdb_destroy_logical_type(&dbl);
    duckdb_destroy_logical_type(&varchar);
    duckdb_destroy_logical_type(&boolean);
    return registered == DuckDBSuccess;
}

/* The entry point DuckDB looks for in <name>.duckdb_extension: <name>_init_c_api. */
__attribute__((visibility("default"))) bool pyro_native_init_c_api(
    duckdb_extension_info info, struct duckdb_extension_access *access) {
    void *const *api = access->get_api(info, PYRO_CAPI_VERSION);
    if (!api) return false; /* DuckDB has set the error */
    memcpy(pyro_api, api, sizeof(pyro_api));
    duckdb_database *db = access->get_database(info);
    duckdb_connection con;
    if (!db || duckdb_connect(*db, &con) == DuckDBError) {
        access->set_error(info, "pyro_native: cannot connect to the database");
        return false;
    }
    bool ok = register_pass1(con);
    duckdb_disconnect(&con);
    if (!ok) access->set_error(info, "pyro_native: cannot register pyro_pass1");
    return ok;
}
