"""The drift statistics against textbook values and scipy, the profile, the default thresholds on synthetic rides."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import spatial, stats

from web_service import drift
from web_service.drift import Profile, ProfileError, Thresholds

# --- PSI ------------------------------------------------------------------------------------------


def test_psi_of_one_bin_doubled_and_two_halved_is_the_closed_form():
    reference = [0.1] * 10
    current = [0.2, 0.05, 0.05] + [0.1] * 7

    # (0.2 - 0.1) ln 2 + 2 (0.05 - 0.1) ln 0.5 = 0.1 ln 2 + 0.1 ln 2
    assert drift.psi(reference, current) == pytest.approx(0.2 * math.log(2), rel=1e-12)


def test_psi_of_two_bins_is_the_sum_of_difference_times_log_ratio():
    # 0.4 ln(0.9 / 0.5) - 0.4 ln(0.1 / 0.5) = 0.4 ln 9
    assert drift.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * math.log(9), rel=1e-12)


def test_psi_of_identical_fractions_is_zero():
    fractions = np.random.default_rng(0).dirichlet(np.ones(10))

    assert drift.psi(fractions, fractions) == 0.0


def test_psi_is_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.dirichlet(np.ones(10)), rng.dirichlet(np.ones(10))

    assert drift.psi(a, b) == pytest.approx(drift.psi(b, a), rel=1e-12)


def test_psi_counts_an_empty_bin_as_the_floor_so_it_stays_finite():
    floor = drift.PSI_FLOOR
    expected = (1.0 - 0.5) * math.log(1.0 / 0.5) + (floor - 0.5) * math.log(floor / 0.5)

    assert drift.psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(expected, rel=1e-12)
    # Empty on both sides: floor against floor, nothing added.
    assert drift.psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0


# --- KS -------------------------------------------------------------------------------------------


def quantiles_of(sample: np.ndarray) -> np.ndarray:
    """The reference as a profile keeps it: QUANTILES sample values."""
    return np.asarray(drift.numeric_profile(sample).quantiles)


def distances(rng: np.random.Generator, rides: int, scale: float = 1.0, zeros: float = 0.03, digits: int = 1):
    """Trip distances as the TLC records them: an atom at 0, a lognormal body, rounded."""
    body = rng.lognormal(0.7, 0.8, rides) * scale
    return np.where(rng.random(rides) < zeros, 0.0, body).round(digits)


@pytest.mark.parametrize(
    ("seed", "reference_rides", "current_rides", "shift"),
    [(0, 20_000, 5_000, 0.0), (1, 60_000, 10_000, 0.05), (2, 5_000, 20_000, 0.3), (3, 1_000, 1_000, 0.0),
     (4, 40_000, 40_000, 1.0)],
)  # fmt: skip
def test_ks_from_quantiles_equals_scipys_two_sample_d_on_continuous_samples(
    seed, reference_rides, current_rides, shift
):
    rng = np.random.default_rng(seed)
    reference, current = rng.normal(size=reference_rides), rng.normal(shift, 1.0, current_rides)

    exact = stats.ks_2samp(reference, current).statistic

    assert drift.ks_statistic(quantiles_of(reference), current) == pytest.approx(exact, abs=0.002)


@pytest.mark.parametrize(
    ("seed", "zeros", "digits", "scale"),
    [(0, 0.03, 1, 1.0), (1, 0.3, 1, 1.0), (2, 0.03, 2, 1.0), (3, 0.03, 1, 1.1), (4, 0.5, 2, 1.3)],
)
def test_ks_from_quantiles_equals_scipys_on_samples_with_atoms_and_ties(seed, zeros, digits, scale):
    rng = np.random.default_rng(seed)
    reference = distances(rng, 30_000, zeros=zeros, digits=digits)
    current = distances(rng, 10_000, scale=scale, zeros=zeros, digits=digits)

    exact = stats.ks_2samp(reference, current).statistic

    assert drift.ks_statistic(quantiles_of(reference), current) == pytest.approx(exact, abs=0.002)


def test_ks_from_quantiles_equals_scipys_when_few_values_repeat_many_times():
    """Forest predictions: a few hundred distinct values, each shared by many rides."""
    rng = np.random.default_rng(5)
    values = np.sort(rng.gamma(3.0, 5.0, 300))
    reference, current = rng.choice(values, 50_000), rng.choice(values, 8_000, p=rng.dirichlet(np.ones(300) * 50))

    exact = stats.ks_2samp(reference, current).statistic

    assert drift.ks_statistic(quantiles_of(reference), current) == pytest.approx(exact, abs=0.002)


def test_ks_between_uniform_0_1_and_uniform_0_2_to_1_2_is_0_2():
    reference = np.linspace(0.0, 1.0, drift.QUANTILES)  # the exact quantiles of U(0, 1)
    current = np.linspace(0.2, 1.2, 100_001)

    assert drift.ks_statistic(reference, current) == pytest.approx(0.2, abs=0.001)


def test_ks_of_a_sample_against_its_own_quantiles_is_within_a_quantile_step():
    sample = np.random.default_rng(6).exponential(size=20_000)

    assert drift.ks_statistic(quantiles_of(sample), sample) <= 1 / (drift.QUANTILES - 1)


@pytest.mark.parametrize(
    ("seed", "reference_rides", "current_rides", "shift"),
    [(0, 20_000, 5_000, 0.0), (1, 60_000, 10_000, 0.02), (2, 5_000, 20_000, 0.05), (3, 2_000, 3_000, 0.0)],
)
def test_ks_pvalue_is_scipys_asymptotic_two_sample_pvalue(seed, reference_rides, current_rides, shift):
    rng = np.random.default_rng(seed)
    result = stats.ks_2samp(rng.normal(size=reference_rides), rng.normal(shift, 1.0, current_rides), method="asymp")

    # scipy takes the finite-n distribution (kstwo) at round(n m / (n + m)); ours its limit, Kolmogorov's.
    assert drift.ks_pvalue(result.statistic, reference_rides, current_rides) == pytest.approx(
        result.pvalue, rel=0.05, abs=1e-4
    )


def test_ks_pvalue_without_rides_is_one():
    assert drift.ks_pvalue(0.5, 0, 100) == 1.0


# --- Jensen-Shannon -------------------------------------------------------------------------------


def test_js_distance_of_identical_frequencies_is_zero():
    assert drift.js_distance([5, 3, 2], [50, 30, 20]) == pytest.approx(0.0, abs=1e-7)


def test_js_distance_of_disjoint_frequencies_is_one_in_base_2():
    assert drift.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)


def test_js_distance_is_the_square_root_of_the_divergence_computed_by_hand():
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4)
    kl_p_m = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q_m = 1.0 * math.log2(1.0 / 0.75)  # the 0 * log(0 / m) term is 0
    divergence = 0.5 * kl_p_m + 0.5 * kl_q_m

    assert drift.js_distance([1, 1], [1, 0]) == pytest.approx(math.sqrt(divergence), rel=1e-12)
    assert divergence == pytest.approx(1.5 - 0.75 * math.log2(3))  # the same, simplified


def test_js_distance_equals_scipys_jensenshannon_in_base_2():
    rng = np.random.default_rng(7)
    p, q = rng.integers(0, 500, 30), rng.integers(0, 500, 30)

    expected = spatial.distance.jensenshannon(p / p.sum(), q / q.sum(), base=2)

    assert drift.js_distance(p, q) == pytest.approx(expected, rel=1e-12)


def test_js_distance_with_nothing_counted_on_one_side_is_zero():
    assert drift.js_distance([0, 0], [3, 4]) == 0.0


# --- the profile ----------------------------------------------------------------------------------


def ride_columns(rides: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    distance = distances(rng, rides, digits=2)
    return {
        "trip_distance": distance,
        "PULocationID": rng.integers(1, 30, rides).astype(float),
        "DOLocationID": rng.integers(1, 30, rides).astype(float),
        "predicted_duration": 4.0 + 3.0 * distance,
    }


def test_a_profile_survives_a_round_trip_through_json():
    profile = drift.build_profile(ride_columns(6000), {"valid_rmse": 6.75}, source="jan.parquet", run_id="abc")

    again = Profile.from_json(json.loads(json.dumps(profile.to_json())))

    assert again == profile
    assert again.summary() == {"rides": 6000, "metrics": {"valid_rmse": 6.75}, "source": "jan.parquet", "run_id": "abc"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": 2, "rides": 1, "numeric": {}, "zones": {}}, "not a reference profile of format 1 (format: 2)"),
        ([1, 2, 3], "not a reference profile of format 1 (format: list)"),
        ({"rides": 1, "numeric": {}, "zones": {}}, "not a reference profile of format 1 (format: None)"),
        ({"format": 1, "rides": 1, "zones": {}}, "a reference profile with a missing or malformed part (KeyError("),
        ({"format": 1, "rides": 1, "numeric": {"trip_distance": {"count": 1}}, "zones": {}},
         "a reference profile with a missing or malformed part (TypeError("),
    ],
)  # fmt: skip
def test_a_profile_of_another_format_or_with_a_part_missing_is_refused(data, message):
    with pytest.raises(ProfileError) as error:
        Profile.from_json(data)

    assert str(error.value).startswith(message)


def test_profiling_rides_without_a_column_is_refused():
    columns = ride_columns(100)
    del columns["predicted_duration"]

    with pytest.raises(ProfileError, match="cannot profile rides without predicted_duration"):
        drift.build_profile(columns)


def test_profile_quantiles_are_sample_values():
    values = np.random.default_rng(8).normal(size=7777)

    profile = drift.numeric_profile(values)

    assert len(profile.quantiles) == drift.QUANTILES
    assert set(profile.quantiles) <= set(values.tolist())
    assert profile.quantiles[0] == values.min() and profile.quantiles[-1] == values.max()


def test_rides_with_an_atom_compare_to_their_own_profile_with_ks_under_a_thousandth():
    """A quantile one ulp off an atom (interpolated, or rounded) misplaces the atom's whole step: once D = 0.028."""
    rng = np.random.default_rng(9)
    columns = ride_columns(20_000)
    atom = 13.337000000000002  # one forest leaf's prediction, shared by a quarter of the rides
    columns["predicted_duration"] = np.where(rng.random(20_000) < 0.25, atom, rng.gamma(3.0, 5.0, 20_000))

    stored = Profile.from_json(json.loads(json.dumps(drift.build_profile(columns).to_json())))

    checks = drift.compare(stored, columns)

    assert {(check.column, check.method) for check in checks} == {
        ("trip_distance", "psi"), ("trip_distance", "ks"), ("PULocationID", "js"), ("DOLocationID", "js"),
        ("predicted_duration", "psi"), ("predicted_duration", "ks"),
    }  # fmt: skip
    for check in checks:
        assert not check.drifted
        assert check.statistic <= (0.001 if check.method == "ks" else 1e-6), check


def test_zones_under_half_a_percent_of_the_reference_are_pooled_into_other():
    reference = drift.zone_profile(np.array([1] * 600 + [2] * 396 + [3] * 4))  # zone 3: 0.4 %

    kept, counts = reference.pooled()

    assert kept == ["1", "2"]
    assert counts.tolist() == [600, 396, 4]


def test_current_zones_the_reference_never_saw_count_as_other():
    counts = drift.current_zone_counts(["1", "2"], np.array([1, 1, 2, 3, 200, 200]))

    assert counts.tolist() == [2, 1, 3]


def test_a_zone_check_names_the_zones_that_moved_most_first():
    reference = drift.zone_profile(np.array([1] * 5000 + [2] * 5000))
    current = np.array([1] * 3000 + [2] * 5000 + [7] * 2000)

    check = drift.zone_check("PULocationID", reference, current, Thresholds())

    assert check.drifted
    assert [moved["zone"] for moved in check.detail["top_moved"]] == ["1", "other", "2"]
    assert check.detail["top_moved"][1] == {"zone": "other", "reference_share": 0.0, "current_share": 0.2}


def test_too_few_current_rides_give_no_statistic_no_verdict_and_a_note():
    profile = drift.build_profile(ride_columns(10_000), {"valid_rmse": 5.0})
    current = ride_columns(4999, seed=1)
    current["trip_distance"] = current["trip_distance"] * 3  # drifted, but too few rides to say so

    checks = drift.compare(profile, current)
    error = drift.error_check(profile, np.full(4999, 30.0), np.full(4999, 10.0), Thresholds())

    assert len(checks) == 6
    for check in [*checks, error]:
        assert check.statistic is None and not check.drifted
    assert checks[0].detail == {"rides": 4999, "note": "4999 rides, fewer than the 5000 a verdict needs"}
    assert error.detail["note"] == "too few rides"


def test_a_column_missing_from_the_current_rides_is_left_out_of_the_comparison():
    columns = ride_columns(6000)
    profile = drift.build_profile(columns)
    del columns["predicted_duration"]

    assert {check.column for check in drift.compare(profile, columns)} == {
        "trip_distance", "PULocationID", "DOLocationID",
    }  # fmt: skip


def test_error_metrics_count_only_rides_of_1_to_60_minutes():
    actual = np.array([0.5, 1.0, 30.0, 60.0, 61.0, np.nan, 10.0])
    predicted = np.array([9.0, 4.0, 26.0, 60.0, 1.0, 5.0, np.nan])

    errors = drift.error_metrics(actual, predicted)

    # kept: 1 -> 4 (error 3), 30 -> 26 (4), 60 -> 60 (0)
    assert errors == {"rides": 3, "rmse": pytest.approx(math.sqrt(25 / 3)), "mae": pytest.approx(7 / 3)}


def test_error_metrics_of_no_ride_in_range_are_nan():
    errors = drift.error_metrics(np.array([0.2, 90.0]), np.array([1.0, 1.0]))

    assert errors["rides"] == 0 and math.isnan(errors["rmse"]) and math.isnan(errors["mae"])


def test_error_check_divides_the_current_rmse_by_the_runs_validation_rmse():
    profile = drift.build_profile(ride_columns(100), {"valid_rmse": 2.0, "valid_mae": 1.5})
    actual = np.full(6000, 20.0)

    worse = drift.error_check(profile, actual, actual + 3.0, Thresholds())
    same = drift.error_check(profile, actual, actual + 2.0, Thresholds())

    assert worse.statistic == 1.5 and worse.drifted and worse.threshold == 1.25
    assert worse.detail == {"rides": 6000, "rmse": 3.0, "mae": 3.0, "valid_rmse": 2.0, "valid_mae": 1.5}
    assert same.statistic == 1.0 and not same.drifted


def test_error_check_without_a_validation_rmse_is_none():
    profile = drift.build_profile(ride_columns(100))

    assert drift.error_check(profile, np.full(6000, 20.0), np.full(6000, 40.0), Thresholds()) is None


# --- the default thresholds on synthetic months ---------------------------------------------------

ZONES = np.arange(1, 266)
# Zipf-like zone shares, the ranks shuffled over the zone IDs: about 30 zones above MIN_ZONE_SHARE,
# holding 70 % of the rides, as in the green months.
ZONE_SHARES = np.random.default_rng(7).permutation(1.0 / ZONES**1.1)
ZONE_SHARES /= ZONE_SHARES.sum()
ZONE_MINUTES = np.random.default_rng(11).normal(0.0, 1.0, 266)  # each zone's effect on a prediction


def predict(pickup: np.ndarray, dropoff: np.ndarray, distance: np.ndarray) -> np.ndarray:
    return 3.0 + 2.8 * distance + ZONE_MINUTES[pickup.astype(int)] + ZONE_MINUTES[dropoff.astype(int)]


def month(rides: int, seed: int) -> dict[str, np.ndarray]:
    """A month of green rides, roughly: distances lognormal with 3 % at 0, to the hundredth; skewed zones."""
    rng = np.random.default_rng(seed)
    pickup = rng.choice(ZONES, rides, p=ZONE_SHARES).astype(float)
    dropoff = rng.choice(ZONES, rides, p=ZONE_SHARES).astype(float)
    distance = np.minimum(distances(rng, rides, digits=2), 120.0)
    return {"trip_distance": distance, "PULocationID": pickup, "DOLocationID": dropoff,
            "predicted_duration": predict(pickup, dropoff, distance)}  # fmt: skip


def fired(checks: list[drift.Check]) -> set[tuple[str, str]]:
    return {(check.column, check.method) for check in checks if check.drifted}


@pytest.fixture(scope="module")
def january() -> dict[str, np.ndarray]:
    return month(60_000, seed=0)


@pytest.fixture(scope="module")
def reference(january) -> Profile:
    return drift.build_profile(january)


@pytest.mark.parametrize("seed", range(5))
def test_random_halves_of_a_month_never_alarm(january, seed):
    """As five random halves of January 2021 stay quiet (bench/results/drift.md)."""
    order = np.random.default_rng(seed).permutation(60_000)
    first, second = ({name: values[half] for name, values in january.items()} for half in np.split(order, 2))

    checks = drift.compare(drift.build_profile(first), second)

    assert len(checks) == 6 and fired(checks) == set()


def test_another_month_from_the_same_distribution_does_not_alarm(reference):
    """As February 2021 against January stays quiet."""
    assert fired(drift.compare(reference, month(60_000, seed=1))) == set()


def test_distances_longer_by_a_third_are_detected_by_psi_and_ks(reference):
    """As February 2021 with distances x1.3 (predictions recomputed) is detected."""
    current = month(60_000, seed=1)
    current["trip_distance"] = (current["trip_distance"] * 1.3).round(2)
    current["predicted_duration"] = predict(current["PULocationID"], current["DOLocationID"], current["trip_distance"])

    found = fired(drift.compare(reference, current))

    assert {("trip_distance", "psi"), ("trip_distance", "ks")} <= found
    assert not {("PULocationID", "js"), ("DOLocationID", "js")} & found


def test_a_third_of_pickups_moved_to_other_zones_is_detected_by_js_on_pickups_only(reference):
    """As February 2021 with a third of its pickups moved to uniformly random other zones is detected."""
    current = month(60_000, seed=1)
    rng = np.random.default_rng(3)
    moved = rng.random(60_000) < 1 / 3
    pickup = current["PULocationID"]
    other = rng.integers(1, 265, 60_000)
    other = other + (other >= pickup)  # uniform over the 264 zones that are not the ride's own
    current["PULocationID"] = np.where(moved, other, pickup)
    current["predicted_duration"] = predict(current["PULocationID"], current["DOLocationID"], current["trip_distance"])

    checks = drift.compare(reference, current)

    assert fired(checks) == {("PULocationID", "js")}
    assert drift.drifted_columns(checks) == ["PULocationID"]
