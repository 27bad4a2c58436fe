import numpy as np

from exporter.windows import Window, WindowBuffer, counter_resets, grid, shard_of


def _block(entities, ts, values, signals=("a",)):
    return Window("x", ("instance",), tuple((e,) for e in entities), signals,
                  np.asarray(ts, float), np.asarray(values, float))


def test_grid_is_aligned_to_step_multiples():
    assert list(grid(61, 300, 60)) == [120, 180, 240, 300]
    assert list(grid(120, 120, 60)) == [120]


def test_buffer_appends_shifts_and_keeps_gaps():
    buf = WindowBuffer("x", ("instance",), ("a",), 60.0, 4)
    buf.update(_block(["h1"], [60, 120, 180, 240], [[[1, 2, np.nan, 4]]]))
    assert buf.fetch_start(300, 0) == 240  # only the new steps next time
    buf.update(_block(["h1"], [300], [[[5]]]))
    w = buf.window()
    assert list(w.timestamps) == [120, 180, 240, 300]
    np.testing.assert_array_equal(w.values[0, 0], [2, np.nan, 4, 5])


def test_late_missing_sample_never_erases_held_value():
    buf = WindowBuffer("x", ("instance",), ("a",), 60.0, 3)
    buf.update(_block(["h1"], [60, 120, 180], [[[1, 2, 3]]]))
    buf.update(_block(["h1"], [120, 180], [[[np.nan, 9]]]))
    np.testing.assert_array_equal(buf.window().values[0, 0], [1, 2, 9])


def test_entity_churn_and_cardinality_guard():
    buf = WindowBuffer("x", ("instance",), ("a",), 60.0, 2, max_entities=2)
    buf.update(_block(["h1", "h2", "h3"], [60], [[[1]], [[2]], [[3]]]))
    assert buf.entities == [("h1",), ("h2",)] and buf.dropped_total == 1
    # h1 vanishes: after a full window without samples it expires, making room for h3.
    buf.update(_block(["h2"], [120, 180], [[[1, 1]]]))
    assert buf.entities == [("h2",)]
    buf.update(_block(["h3"], [240], [[[7]]]))
    assert ("h3",) in buf.entities


def test_state_round_trip():
    buf = WindowBuffer("x", ("instance",), ("a", "b"), 60.0, 3)
    buf.update(_block(["h1", "h2"], [60, 120], np.arange(8).reshape(2, 2, 2), ("a", "b")))
    other = WindowBuffer("x", ("instance",), ("a", "b"), 60.0, 3)
    other.restore(buf.state())
    np.testing.assert_array_equal(other.window().values, buf.window().values)
    assert other.entities == buf.entities and other.end == buf.end


def test_shards_partition_entities_stably():
    ents = [(f"host-{i}",) for i in range(300)]
    shards = [shard_of(e, 3) for e in ents]
    assert set(shards) == {0, 1, 2}
    assert shards == [shard_of(e, 3) for e in ents]


def test_window_is_the_buffer_copy_and_later_updates_leave_it_alone():
    """Copy on write: the latest window shares the buffer's values (one copy in memory, read
    only); updates after it (a shift, a late sample in place, a new entity, a clock jump
    back) write new arrays, so a window handed out never changes."""
    buf = WindowBuffer("x", ("instance",), ("a",), 60.0, 3)
    buf.update(_block(["h1"], [60, 120, 180], [[[1, 2, 3]]]))
    updates = [_block(["h1"], [240], [[[4]]]),  # shift
               _block(["h1"], [240], [[[5]]]),  # same end: written in place before
               _block(["h2"], [240], [[[6]]]),  # new entity
               _block(["h1"], [60], [[[7]]])]  # clock back
    for block in updates:
        w = buf.window()
        held = w.values.copy()
        assert np.shares_memory(w.values, buf.values) and not w.values.flags.writeable
        buf.update(block)
        np.testing.assert_array_equal(w.values, held)
    np.testing.assert_array_equal(buf.window().values[:, 0], [[np.nan, np.nan, 7]])


def test_select_by_slice_is_a_view_of_the_same_rows():
    w = _block(["h1", "h2", "h3", "h4"], [60, 120], np.arange(8.0).reshape(4, 1, 2))
    by_slice = w.select(slice(1, 3))
    by_index = w.select(np.array([1, 2]))
    assert by_slice.entities == by_index.entities == (("h2",), ("h3",))
    np.testing.assert_array_equal(by_slice.values, by_index.values)
    assert np.shares_memory(by_slice.values, w.values)
    assert not np.shares_memory(by_index.values, w.values)


def _uptime_and_load(t: int = 120, step: float = 60.0) -> np.ndarray:
    """[1, 2, T]: a process' uptime (seconds since start, ~11.6 days in) and a steady load."""
    rng = np.random.default_rng(3)
    up = 1e6 + step * np.arange(t)
    load = 0.5 + 0.05 * rng.standard_normal(t)
    return np.stack([up, load])[None]


def test_counter_resets_seen_also_across_a_gap() -> None:
    quiet = _uptime_and_load()
    restarted = quiet.copy()
    restarted[0, 0, 90:] = 30 + 60.0 * np.arange(30)  # restarted at step 90
    came_back = quiet.copy()
    came_back[0, :, 50:57] = np.nan  # the host was away for 7 steps ...
    came_back[0, 0, 57:] = 30 + 60.0 * np.arange(63)  # ... and its uptime restarted from 0
    down = quiet.copy()
    down[0, :, 50:57] = np.nan  # scrapes failing for 7 steps, nothing restarted
    gappy = restarted.copy()
    gappy[0, 0, 3:80:4] = np.nan  # an uptime missing every 4th sample still rises
    fresh = restarted.copy()
    fresh[0, :, :40] = np.nan  # a new pod's window before its first scrape
    values = np.concatenate([quiet, restarted, came_back, down, gappy, fresh])
    assert counter_resets(values).tolist() == [False, True, True, False, True, True]


def test_counter_resets_ignore_falls_of_signals_that_are_not_counters() -> None:
    t = np.arange(120)
    rng = np.random.default_rng(4)
    noisy = 0.5 + 0.1 * rng.standard_normal(120)
    noisy[100:] = 0.01  # a gauge collapsing (ASD-like min-max metric): its own business
    flat_then_zero = np.where(t < 100, 0.4, 0.0)  # never rose: not a counter
    saw = 0.55 + 0.003 * (t % 60)  # a GC sawtooth: falls, but not to a fifth
    early = 1e3 + 60.0 * t
    early[5:] = 60.0 * np.arange(115)  # reset after 5 rises: too few to tell a counter
    rate = np.tile([0.0, 0.0167, 0.0333, 0.0333, 0.05, 0.0667, 0.0833, 0.1, 0.0], 14)[:120]
    # a rate of a few events: it rises, but not at every sample
    for series in (noisy, flat_then_zero, saw, early, rate):
        assert not counter_resets(np.stack([series, 0.5 + 0 * t])[None])[0]
    negative = np.linspace(-1.0, -0.5, 120)
    negative[60:] -= 0.1  # a rising negative signal dipping: < 0.2 x before, no counter
    inf = np.concatenate([[1.0, 2, 3, 4, 5], [np.inf, np.inf], np.zeros(113)])
    for series in (negative, inf):
        assert not counter_resets(np.stack([series, 0.5 + 0 * t])[None])[0]
    assert counter_resets(np.zeros((0, 3, 10))).shape == (0,)
    assert counter_resets(np.zeros((2, 3, 1))).tolist() == [False, False]


def test_counter_resets_are_one_restart_not_a_loop_or_a_frequent_job() -> None:
    t = np.arange(120)
    loop = 60.0 * (t % 30) + 5  # restarted every 30 steps: a crash loop
    job_age = 60.0 * (t % 25)  # time() - last_success of a job every 25 minutes
    once = 60.0 * np.where(t < 70, t + 1000, t - 70)
    values = np.stack([np.stack([x, 0.5 + 0 * t]) for x in (loop, job_age, once)])
    assert counter_resets(values).tolist() == [False, False, True]


def test_counter_resets_boundaries_and_any_signal() -> None:
    six = np.concatenate([np.arange(1.0, 7.0), [0.2 * 6.0], 1.0 + np.arange(5.0)])
    five = np.concatenate([np.arange(2.0, 7.0), [0.0], 1.0 + np.arange(6.0)])
    above = six.copy()
    above[6] = 0.2 * 6.0 + 1e-9  # just above a fifth of the value before: no reset
    flat = np.full(12, 0.5)
    rows = [np.stack([flat, six]), np.stack([flat, five]), np.stack([flat, above])]
    assert counter_resets(np.stack(rows)).tolist() == [True, False, False]
