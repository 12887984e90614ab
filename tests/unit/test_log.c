/* lib/service/log.c: the line every process prints, in text and in JSON,
 * and the episode that keeps a retried failure to one line. */
#include <check.h>
#include <cjson/cJSON.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "support.h"

/* 2026-12-04T23:41:32.123Z in ms since the epoch. */
#define AT_MS 1796427692123LL

static char *formatted(bool json, strata_log_level_t level, const char *line)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(out);
    svc_log_format(out, json, "writer", level, AT_MS, line);
    fclose(out);
    return text;
}

START_TEST(text_has_rfc3339_ms_zone_process_level_then_the_event_unchanged)
{
    setenv("TZ", "UTC", 1);
    char *text = formatted(false, STRATA_LOG_INFO, "event=ready node=n1 dir=\"a b\"");
    ck_assert_str_eq(text, "2026-12-04T23:41:32.123+00:00 writer info event=ready node=n1 "
                           "dir=\"a b\"\n");
    free(text);
    setenv("TZ", "Asia/Kolkata", 1); /* +05:30: the zone's minutes too */
    text = formatted(false, STRATA_LOG_ERROR, "event=x");
    regex_t re;
    ck_assert_int_eq(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}"
                             "[+-][0-9]{2}:[0-9]{2} writer error event=x\n$",
                             REG_EXTENDED),
                     0);
    ck_assert_msg(regexec(&re, text, 0, NULL, 0) == 0, "%s", text);
    regfree(&re);
    free(text);
    unsetenv("TZ");
}
END_TEST

START_TEST(json_is_one_object_with_the_pairs_as_fields)
{
    setenv("TZ", "UTC", 1);
    char *text = formatted(true, STRATA_LOG_WARNING,
                           "event=writer_unreachable error=\"no \\\"writer\\\" here\" seq=42 "
                           "level=7 loose words");
    ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1, "not one line: %s", text);
    cJSON *obj = cJSON_Parse(text);
    ck_assert_msg(obj, "not JSON: %s", text);
    ck_assert_str_eq(cJSON_GetObjectItem(obj, "time")->valuestring,
                     "2026-12-04T23:41:32.123+00:00");
    ck_assert_str_eq(cJSON_GetObjectItem(obj, "process")->valuestring, "writer");
    ck_assert_str_eq(cJSON_GetObjectItem(obj, "level")->valuestring, "warning");
    ck_assert_str_eq(cJSON_GetObjectItem(obj, "event")->valuestring, "writer_unreachable");
    ck_assert_str_eq(cJSON_GetObjectItem(obj, "error")->valuestring, "no \"writer\" here");
    ck_assert_str_eq(cJSON_GetObjectItem(obj, "seq")->valuestring, "42");
    ck_assert_str_eq(cJSON_GetObjectItem(obj, "_level")->valuestring, "7");
    ck_assert_str_eq(cJSON_GetObjectItem(obj, "msg")->valuestring, "loose words");
    cJSON_Delete(obj);
    free(text);
    unsetenv("TZ");
}
END_TEST

START_TEST(format_and_level_are_checked)
{
    strata_error_t err;
    ck_assert_int_eq(svc_log_check("info", "text", &err), 0);
    ck_assert_int_eq(svc_log_check("debug", "json", &err), 0);
    ck_assert_int_eq(svc_log_check("info", NULL, &err), 0);
    ck_assert_int_eq(svc_log_check("info", "xml", &err), STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "log/format"));
    ck_assert_int_eq(svc_log_check("loud", "text", &err), STRATA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "log/level"));
}
END_TEST

START_TEST(an_episode_logs_its_start_a_new_code_and_its_end_once)
{
    svc_episode_t e = {0};
    ck_assert_uint_eq(svc_episode_cleared(&e), 0); /* a success with nothing failing */
    ck_assert(svc_episode_failed(&e, STRATA_ETIMEDOUT));
    ck_assert(!svc_episode_failed(&e, STRATA_ETIMEDOUT));
    ck_assert(!svc_episode_failed(&e, STRATA_ETIMEDOUT));
    ck_assert(svc_episode_failed(&e, STRATA_EIO)); /* another condition */
    ck_assert(!svc_episode_failed(&e, STRATA_EIO));
    ck_assert_uint_eq(svc_episode_cleared(&e), 5);
    ck_assert_uint_eq(svc_episode_cleared(&e), 0); /* cleared once */
    ck_assert(svc_episode_failed(&e, STRATA_EIO)); /* a new episode */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, text_has_rfc3339_ms_zone_process_level_then_the_event_unchanged);
    tcase_add_test(tc, json_is_one_object_with_the_pairs_as_fields);
    tcase_add_test(tc, format_and_level_are_checked);
    suite_add_tcase(s, tc);
    TCase *episodes = tcase_create("episode");
    tcase_add_test(episodes, an_episode_logs_its_start_a_new_code_and_its_end_once);
    suite_add_tcase(s, episodes);
    return ts_run(s);
}
