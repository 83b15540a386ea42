/* test_main.c -- runs every suite of the engine's unit tests. */
#define RT_TEST_MAIN
#include "rt_test.h"

void suite_map(void);
void suite_stream(void);
void suite_clock(void);
void suite_engine(void);
void suite_walk(void);
void suite_export(void);
void suite_fold(void);
void suite_capture(void);
void suite_spool(void);
void suite_sigguard(void);

int main(int argc, char **argv)
{
    rt_test_begin(argc, argv);
    suite_map();
    suite_stream();
    suite_clock();
    suite_engine();
    suite_walk();
    suite_export();
    suite_fold();
    suite_capture();
    suite_spool();
    suite_sigguard();
    return rt_test_end();
}
