/* test_ui.c - the dashboard's files are in the binary, found by name,
 * answered with their content type; anything else is a JSON 404. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ui.h"

static void test_find(void **state)
{
    (void)state;
    const ui_asset *page = ui_find(NULL);
    assert_non_null(page);
    assert_string_equal(page->name, "index.html");
    assert_ptr_equal(ui_find(""), page);
    assert_ptr_equal(ui_find("index.html"), page);
    assert_true(page->len > 100);
    assert_memory_equal(page->data, "<!doctype html>", 15);
    assert_string_equal(ui_find("app.js")->content_type, "text/javascript; charset=utf-8");
    assert_string_equal(ui_find("style.css")->content_type, "text/css; charset=utf-8");
    assert_null(ui_find("nope.js"));
    assert_null(ui_find("../index.html"));
    assert_true(ui_n_assets >= 3);
}

static void test_reply(void **state)
{
    (void)state;
    http_reply r = {0};
    ui_reply("app.js", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, ui_find("app.js")->len);
    assert_memory_equal(r.body, ui_find("app.js")->data, r.len);
    free(r.body);
    memset(&r, 0, sizeof r);
    ui_reply("missing.css", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.content_type, "application/json");
    assert_non_null(strstr(r.body, "\"path\""));
    free(r.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_reply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
