"""The firmware test harness itself: tests really run in MicroPython, under the budget."""

from __future__ import annotations

import textwrap

import mpharness

pytest_plugins = ["pytester"]

OVER_BUDGET = textwrap.dedent(
    """
    def test_allocates_150k():
        buf = bytearray(150 * 1024)
        assert len(buf) == 150 * 1024
    """
)


def test_allocation_beyond_the_board_budget_fails_under_it(tmp_path):
    fw = tmp_path / "firmware"
    fw.mkdir()
    (fw / "test_overbudget.py").write_text(OVER_BUDGET)
    budget = mpharness.board_heap("esp32-devkitc")
    assert budget == 110 * 1024
    under = mpharness.run_firmware(fw / "test_overbudget.py", "test_allocates_150k")
    assert under.returncode != 0
    assert "MemoryError" in under.stderr + under.stdout
    # The same test passes with room to spare: it is the budget that bites, nothing else.
    roomy = mpharness.run_firmware(
        fw / "test_overbudget.py", "test_allocates_150k", heap=4 * budget
    )
    assert roomy.returncode == 0, roomy.stdout + roomy.stderr


EDGES = textwrap.dedent(
    """
    def test_just_over_the_budget():
        bytearray(111 * 1024)

    def test_most_of_the_budget():
        bytearray(96 * 1024)
    """
)


def test_the_budget_is_the_code_s_whole_and_no_more(tmp_path):
    # The ROMFS image rides on top of the budget (the pole keeps it in flash): 111 KiB in
    # one piece does not fit in 110 KiB, 96 KiB does (the runner and the test take the rest).
    fw = tmp_path / "firmware"
    fw.mkdir()
    (fw / "test_edges.py").write_text(EDGES)
    over = mpharness.run_firmware(fw / "test_edges.py", "test_just_over_the_budget")
    assert over.returncode != 0 and "MemoryError" in over.stdout + over.stderr
    most = mpharness.run_firmware(fw / "test_edges.py", "test_most_of_the_budget")
    assert most.returncode == 0, most.stdout + most.stderr


def test_firmware_tests_run_in_micropython_not_cpython(tmp_path):
    fw = tmp_path / "firmware"
    fw.mkdir()
    (fw / "test_impl.py").write_text(
        "import sys\ndef test_impl():\n    print('impl', sys.implementation.name)\n"
    )
    proc = mpharness.run_firmware(fw / "test_impl.py", "test_impl")
    assert proc.returncode == 0
    assert "impl micropython" in proc.stdout


def _suite(pytester):
    fw = pytester.mkdir("firmware")
    (fw / "test_pair.py").write_text(
        textwrap.dedent(
            """
            def test_good():
                assert 1 + 1 == 2

            def test_bad():
                x = [1, 2]
                assert x[0] == 2, "first is %d" % x[0]

            async def test_async_good():
                import asyncio
                await asyncio.sleep_ms(1)

            def helper_not_a_test():
                raise RuntimeError
            """
        )
    )


def test_each_function_is_its_own_item_with_micropython_traceback(pytester):
    _suite(pytester)
    result = pytester.runpytest("-p", "mpharness", "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_pair.py::test_bad*FAILED*",
            "*AssertionError: first is 1*",
            "*firmware: 3 tests executed by MicroPython*",
        ]
    )
    assert 'test_pair.py", line 7, in test_bad' in result.stdout.str()


def test_missing_interpreter_fails_never_skips(pytester, monkeypatch):
    _suite(pytester)
    monkeypatch.setenv("LANTERNA_MICROPYTHON", "/nonexistent/micropython")
    result = pytester.runpytest("-p", "mpharness")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*MicroPython interpreter is missing*"])
