/* Pins the CRC32C convention that every on-disk checksum depends on. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "strata/crc.h"
#include "support.h"

START_TEST(crc32c_matches_the_standard_check_value)
{
    ck_assert_uint_eq(strata_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(strata_crc32c(0, "", 0), 0u);
}
END_TEST

START_TEST(crc32c_continues_across_chunks)
{
    const char *text = "the quick brown fox jumps over the lazy dog";
    size_t len = strlen(text);
    uint32_t whole = strata_crc32c(0, text, len);
    for (size_t cut = 0; cut <= len; cut++)
        ck_assert_uint_eq(strata_crc32c(strata_crc32c(0, text, cut), text + cut, len - cut), whole);
}
END_TEST

START_TEST(crc32c_changes_on_any_single_bit_flip)
{
    unsigned char buf[64];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 7);
    uint32_t base = strata_crc32c(0, buf, sizeof buf);
    for (size_t bit = 0; bit < sizeof buf * 8; bit++) {
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        ck_assert_uint_ne(strata_crc32c(0, buf, sizeof buf), base);
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("crc");
    TCase *tc = tcase_create("crc32c");
    tcase_add_test(tc, crc32c_matches_the_standard_check_value);
    tcase_add_test(tc, crc32c_continues_across_chunks);
    tcase_add_test(tc, crc32c_changes_on_any_single_bit_flip);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
