/* The shared control-verb table: lookup, arity, control-only verbs and the
 * unknown-verb message that lists the table. */
#include <check.h>
#include <string.h>

#include "support.h"
#include "verbs.h"

static int calls;
static void count_call(void *call)
{
    (void)call;
    calls++;
}

static const svc_verb_t table[] = {
    {"ping", 0, 0, false, count_call, "liveness"},
    {"checkpoint", 1, 1, true, count_call, "DEST: a checkpoint"},
    {"state", 0, 2, false, count_call, "[A B]: state"},
};
#define N (sizeof table / sizeof table[0])

static strata_request_t request(const char *verb, size_t n_args)
{
    static const char *args[] = {"a", "b", "c"};
    return (strata_request_t){
        .op = STRATA_OP_CONTROL, .verb = verb, .args = args, .n_args = n_args};
}

START_TEST(a_known_verb_with_its_arity_runs_its_handler)
{
    char why[256] = "";
    calls = 0;
    strata_request_t req = request("state", 2);
    ck_assert(svc_verbs_dispatch(table, N, &req, false, NULL, why, sizeof why));
    req = request("ping", 0);
    ck_assert(svc_verbs_dispatch(table, N, &req, false, NULL, why, sizeof why));
    ck_assert_int_eq(calls, 2);
    req = request("checkpoint", 1);
    ck_assert_ptr_eq(svc_verbs_find(table, N, &req, true, why, sizeof why), &table[1]);
}
END_TEST

START_TEST(each_refusal_names_what_was_wrong)
{
    char why[256];
    calls = 0;
    strata_request_t req = request("state", 3);
    ck_assert(!svc_verbs_dispatch(table, N, &req, true, NULL, why, sizeof why));
    ck_assert_str_eq(why, "control state: takes 0..2 args, got 3");
    req = request("checkpoint", 1);
    ck_assert(!svc_verbs_dispatch(table, N, &req, false, NULL, why, sizeof why));
    ck_assert_str_eq(why, "control.verb: 'checkpoint' is only accepted on the control endpoint");
    req = request("nope", 0);
    ck_assert(!svc_verbs_dispatch(table, N, &req, true, NULL, why, sizeof why));
    ck_assert_str_eq(why, "control.verb: 'nope' unknown (ping, checkpoint, state)");
    /* A small buffer truncates the message, never overruns it. */
    char tiny[16];
    ck_assert_ptr_null(svc_verbs_find(table, N, &req, true, tiny, sizeof tiny));
    ck_assert_uint_eq(strlen(tiny), sizeof tiny - 1);
    ck_assert_int_eq(calls, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("verbs");
    TCase *tc = tcase_create("verbs");
    tcase_add_test(tc, a_known_verb_with_its_arity_runs_its_handler);
    tcase_add_test(tc, each_refusal_names_what_was_wrong);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
