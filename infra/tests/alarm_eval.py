#!/usr/bin/env python3
"""Does the backlog alarm fire when it should, on every schedule? A simulation, offline.

Reads each slice's backlog alarm (`SweeperBacklogAlarmN`, metric `BacklogSeconds`) from
the transformed template (`target/infra/template.json`, written by step 2 of
`.ci/infra.sh`), evaluates it the way CloudWatch evaluates a metric alarm, and feeds it
the data points a slice's runs publish on the schedules rate(1 minute), rate(1 hour) and
rate(1 day), at the threshold's default and at both of its bounds:

  (a) every run stops early: the alarm reaches ALARM no later than the threshold, plus
      one schedule interval (or one run, when runs last longer than the interval), plus
      one period for CloudWatch to close the minute the run published in, after the pass
      began; and not before a run has reported a pass older than the threshold;
  (b) every pass completes, in one run (BacklogSeconds 0 every run) or over a few runs
      whose pass stays well under the threshold: never ALARM;
  (c) recovery: once in ALARM, the first run that completes its pass returns it to OK
      within one period of publishing, and later complete passes keep it there.

Every case runs with the schedule's first tick at two phases within the minute and with
two sizes of CloudWatch's evaluation range, and a few with the metrics arriving 90 s late.
The same checks must reject the designs this one was chosen over, one setting changed
each: TreatMissingData missing, notBreaching or breaching, Statistic Maximum (a run that
stops at its timeout and the queued run that completes the pass can share a minute), and
3 of 3 periods.

It also replays the alarm this one replaced (Minimum of `Incomplete` over 15-minute
periods, 3 of 3, missing data not breaching), defined inline, as a regression record:
with every run stopping early for days it fires on rate(1 minute) and rate(5 minutes) but
never on rate(1 hour) or rate(1 day).

The evaluator (CloudWatch's documented rules, "How alarm state is evaluated when data is
missing" in the CloudWatch user guide):

- a data point per period: the statistic (SampleCount, Average, Sum, Minimum, Maximum)
  of the values whose timestamp falls in it; a period with no value is missing;
- at every period boundary the alarm reads the evaluation range, the last R periods
  (CloudWatch "attempts to retrieve a higher number of data points" than
  EvaluationPeriods, N, and does not say how many; the guide's examples read 5 for
  N = 3): R = N + 2, and R = N as well for the backlog alarm, whose result must not
  depend on it. A value that reaches CloudWatch late counts once it is there, while its
  period is still within the range;
- N or more real data points in the range: the most recent N are evaluated, missing ones
  skipped, and the treatment of missing data plays no part;
- fewer: `breaching` and `notBreaching` fill the gaps up to N with breaching or
  non-breaching points; `missing` and `ignore` do not fill them: M (DatapointsToAlarm)
  breaching points give ALARM, any non-breaching one OK, and otherwise (no real point,
  or too few, all breaching) `ignore` keeps the current state and `missing` goes to
  INSUFFICIENT_DATA, except that with no real point among the latest N periods but
  breaching ones before them it goes to ALARM (a rule inferred from the guide's table,
  where "X - - - -" is ALARM and "- - - - X" INSUFFICIENT_DATA);
- ALARM when at least M of the evaluated points breach (ComparisonOperator against
  Threshold), otherwise OK; a new alarm starts in INSUFFICIENT_DATA.

Its own checks run first: the guide's two example tables for every treatment of missing
data, each statistic and comparison operator, and the INSUFFICIENT_DATA start.

The sweeper model: a slice's runs start on the schedule's ticks; a run that stops early
lasts the default SweeperTimeout less 1 s, one that completes its pass 20 s; a run starts
no earlier than the previous one ends (reserved concurrency 1). Each run publishes one
BacklogSeconds value when it ends: 0 when it completed the pass, otherwise the seconds
since the start of the run that began the pass.

Usage: alarm_eval.py [TEMPLATE.json]   (default target/infra/template.json)
Exit status 0 when every check passes; 1 with the failures listed otherwise.
"""

import json
import operator
import os
import re
import sys

OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
DEFAULT_TEMPLATE = "target/infra/template.json"

STATISTICS = {
    "SampleCount": len,
    "Sum": sum,
    "Average": lambda values: sum(values) / len(values),
    "Minimum": min,
    "Maximum": max,
}
COMPARISONS = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")


class Failure(Exception):
    pass


# ---------------------------------------------------------------- the evaluator
class AlarmSpec:
    """The settings of a metric alarm that its evaluation depends on."""

    def __init__(self, statistic, period, evaluation_periods, threshold, comparison,
                 treat_missing="missing", datapoints_to_alarm=None):
        if statistic not in STATISTICS:
            raise Failure(f"statistic {statistic!r} is not one this evaluator knows")
        if comparison not in COMPARISONS:
            raise Failure(f"comparison {comparison!r} is not one this evaluator knows")
        if treat_missing not in TREATMENTS:
            raise Failure(f"TreatMissingData {treat_missing!r} is not one of {TREATMENTS}")
        self.statistic = statistic
        self.period = int(period)
        self.n = int(evaluation_periods)
        self.m = int(datapoints_to_alarm if datapoints_to_alarm is not None else evaluation_periods)
        self.threshold = float(threshold)
        self.comparison = comparison
        self.treat_missing = treat_missing
        if self.period < 60 or self.period % 60:
            raise Failure(f"Period {self.period}: a standard-resolution alarm needs a multiple of 60")
        if not 1 <= self.m <= self.n:
            raise Failure(f"DatapointsToAlarm {self.m} must be between 1 and EvaluationPeriods {self.n}")
        if self.period * self.n > 86400:
            raise Failure(f"Period x EvaluationPeriods = {self.period * self.n} s exceeds one day")

    def breaches(self, value):
        return COMPARISONS[self.comparison](value, self.threshold)

    def aggregate(self, values):
        return STATISTICS[self.statistic](values) if values else None

    def describe(self):
        return (f"{self.statistic} over {self.period} s, {self.m} of {self.n}, "
                f"{self.comparison} {self.threshold:g}, missing data {self.treat_missing}")


def evaluate(spec, window, current):
    """The state after one evaluation of `window`, the evaluation range's data points
    (oldest first; None for a missing one), from state `current`."""
    real = [v for v in window if v is not None]
    if len(real) >= spec.n:
        breaching = sum(spec.breaches(v) for v in real[-spec.n:])
        return ALARM if breaching >= spec.m else OK
    gaps = spec.n - len(real)
    breaching = sum(spec.breaches(v) for v in real)
    if spec.treat_missing == "breaching":
        return ALARM if breaching + gaps >= spec.m else OK
    if spec.treat_missing == "notBreaching":
        return ALARM if breaching >= spec.m else OK
    # missing, ignore: the gaps are not filled in.
    if breaching >= spec.m:
        return ALARM
    if breaching < len(real):
        return OK
    if spec.treat_missing == "ignore":
        return current
    if real and all(v is None for v in window[-spec.n:]):
        return ALARM
    return INSUFFICIENT


class Simulation:
    """Evaluates `spec` at every period boundary up to `until` over `samples`, a list of
    (timestamp, value, visible_at): a value counts once CloudWatch has it, at visible_at."""

    def __init__(self, spec, samples, until, range_extra=2):
        self.spec = spec
        self.range = spec.n + range_extra
        self.transitions = [(0, INSUFFICIENT)]
        by_period = {}
        for t, value, visible in samples:
            by_period.setdefault(int(t // spec.period), []).append((visible, value))
        state = INSUFFICIENT
        for k in range(1, int(until // spec.period) + 1):
            now = k * spec.period
            window = []
            for j in range(k - self.range, k):
                values = [v for visible, v in by_period.get(j, []) if visible <= now]
                window.append(spec.aggregate(values))
            new = evaluate(spec, window, state)
            if new != state:
                self.transitions.append((now, new))
                state = new
        self.final = state

    def state_at(self, t):
        state = INSUFFICIENT
        for when, new in self.transitions:
            if when > t:
                break
            state = new
        return state

    def first(self, state, after=0):
        return next((when for when, new in self.transitions if new == state and when >= after), None)


# ---------------------------------------------------------------- its own checks
def self_checks():
    """The user guide's example tables, and the rest of the rules above."""
    failures = []
    # The guide's two tables, evaluation range 5, period 5 minutes: (data points, then
    # the state for missing, ignore, breaching, notBreaching; None = keep the state).
    tables = {
        (3, 3): [
            ("0-X-X", OK, OK, OK, OK),
            ("0----", OK, OK, OK, OK),
            ("-----", INSUFFICIENT, None, ALARM, OK),
            ("0XX-X", ALARM, ALARM, ALARM, ALARM),
            ("----X", INSUFFICIENT, None, ALARM, OK),
            ("X----", ALARM, None, ALARM, OK),
        ],
        (2, 3): [
            ("0-X-X", ALARM, ALARM, ALARM, ALARM),
            ("00X0X", ALARM, ALARM, ALARM, ALARM),
            ("0-X--", OK, OK, ALARM, OK),
            ("----0", OK, OK, ALARM, OK),
            ("----X", INSUFFICIENT, None, ALARM, OK),
        ],
    }
    for (m, n), rows in tables.items():
        for points, *expected in rows:
            window = [{"0": 0.0, "X": 5.0, "-": None}[c] for c in points]
            for treat, want in zip(TREATMENTS, expected):
                spec = AlarmSpec("Maximum", 300, n, 3, "GreaterThanThreshold", treat, m)
                for current in (OK, ALARM, INSUFFICIENT):
                    got = evaluate(spec, window, current)
                    if got != (want or current):
                        failures.append(f"guide table {m} of {n}, {points}, {treat}, from {current}: "
                                        f"got {got}, the guide says {want or 'keep ' + current}")
    values = [3.0, 1.0, 2.0]
    for statistic, want in (("SampleCount", 3), ("Sum", 6.0), ("Average", 2.0), ("Minimum", 1.0), ("Maximum", 3.0)):
        got = AlarmSpec(statistic, 60, 1, 0, "GreaterThanThreshold").aggregate(values)
        if got != want:
            failures.append(f"{statistic} of {values}: got {got}, expected {want}")
    for comparison, want in (("GreaterThanThreshold", [False, False, True]),
                             ("GreaterThanOrEqualToThreshold", [False, True, True]),
                             ("LessThanThreshold", [True, False, False]),
                             ("LessThanOrEqualToThreshold", [True, True, False])):
        spec = AlarmSpec("Maximum", 60, 1, 2, comparison)
        got = [spec.breaches(v) for v in (1, 2, 3)]
        if got != want:
            failures.append(f"{comparison} on 1, 2, 3 against 2: got {got}, expected {want}")
    # Every treatment, one point that breaches then nothing, period 60, 1 of 1: how the
    # state goes on once the point has left the evaluation range.
    after_one_point = {"missing": INSUFFICIENT, "ignore": ALARM, "breaching": ALARM, "notBreaching": OK}
    for treat, want in after_one_point.items():
        spec = AlarmSpec("Maximum", 60, 1, 10, "GreaterThanThreshold", treat)
        sim = Simulation(spec, [(90, 11, 90)], until=3600)
        if sim.state_at(59) != INSUFFICIENT:
            failures.append(f"{treat}: a new alarm is {sim.state_at(59)} before any data, not INSUFFICIENT_DATA")
        if treat != "breaching" and sim.state_at(120) != ALARM:
            failures.append(f"{treat}: the breaching point did not set ALARM ({sim.transitions})")
        if sim.final != want:
            failures.append(f"{treat}: an hour after one breaching point the state is {sim.final}, expected {want}")
    # Data that arrives late still counts, within the evaluation range only.
    spec = AlarmSpec("Maximum", 60, 1, 10, "GreaterThanThreshold", "ignore")
    if Simulation(spec, [(90, 11, 200)], until=600).first(ALARM) != 240:
        failures.append("a point visible at 200 s, in period 60-120 s, did not set ALARM at 240 s")
    if Simulation(spec, [(90, 11, 500)], until=600).first(ALARM) is not None:
        failures.append("a point visible after it left the evaluation range still set ALARM")
    return failures


# ---------------------------------------------------------------- the template
def load_backlog_alarm(path):
    """The backlog alarm's AlarmSpec (all slices must share one), the threshold
    parameter's bounds, and the default SweeperTimeout, read from the template."""
    with open(path, encoding="utf-8") as f:
        template = json.load(f)
    parameters = template.get("Parameters") or {}
    resources = template.get("Resources") or {}

    def resolve(node, what):
        if isinstance(node, (int, float, str)):
            return node
        if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in parameters:
            if "Default" not in parameters[node["Ref"]]:
                raise Failure(f"{what}: parameter {node['Ref']} has no Default")
            return parameters[node["Ref"]]["Default"]
        raise Failure(f"{what}: cannot resolve {json.dumps(node)}")

    functions = sorted(k for k, r in resources.items()
                       if re.fullmatch(r"SweeperFunction[0-9]+", k) and r.get("Type") == "AWS::Lambda::Function")
    if not functions:
        raise Failure(f"{path}: no SweeperFunctionN")
    alarms = {k: r["Properties"] for k, r in resources.items() if r.get("Type") == "AWS::CloudWatch::Alarm"}
    stale = sorted(k for k, p in alarms.items() if p.get("MetricName") == "Incomplete")
    if stale:
        raise Failure(f"{path}: alarms on the retired Incomplete metric remain: {stale}")
    backlog = {k: p for k, p in alarms.items() if p.get("MetricName") == "BacklogSeconds"}
    per_function = {}
    for name, props in backlog.items():
        dims = {d["Name"]: d["Value"] for d in props.get("Dimensions") or []}
        if set(dims) != {"TableName", "FunctionName"}:
            raise Failure(f"{name}: dimensions {sorted(dims)}, expected TableName and FunctionName")
        function = dims["FunctionName"].get("Ref") if isinstance(dims["FunctionName"], dict) else None
        per_function.setdefault(function, []).append(name)
        if props.get("Namespace") != {"Ref": "MetricsNamespace"}:
            raise Failure(f"{name}: Namespace {props.get('Namespace')}, expected the MetricsNamespace parameter")
    if sorted(per_function) != functions or any(len(v) != 1 for v in per_function.values()):
        raise Failure(f"expected exactly one BacklogSeconds alarm per slice function {functions}, "
                      f"found {per_function}")
    keys = ("Statistic", "Period", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
            "ComparisonOperator", "TreatMissingData", "ExtendedStatistic", "Metrics")
    settings = {name: {k: props.get(k) for k in keys} for name, props in backlog.items()}
    first_name, first = next(iter(sorted(settings.items())))
    for name, other in settings.items():
        if other != first:
            raise Failure(f"{name} differs from {first_name}: {other} vs {first}")
    if first["ExtendedStatistic"] or first["Metrics"]:
        raise Failure(f"{first_name}: a percentile or metric-math alarm is beyond this evaluator")
    threshold_param = first["Threshold"].get("Ref") if isinstance(first["Threshold"], dict) else None
    spec = AlarmSpec(
        resolve(first["Statistic"], "Statistic"), resolve(first["Period"], "Period"),
        resolve(first["EvaluationPeriods"], "EvaluationPeriods"),
        resolve(first["Threshold"], "Threshold"), resolve(first["ComparisonOperator"], "ComparisonOperator"),
        resolve(first["TreatMissingData"] or "missing", "TreatMissingData"),
        None if first["DatapointsToAlarm"] is None else resolve(first["DatapointsToAlarm"], "DatapointsToAlarm"),
    )
    thresholds = [float(spec.threshold)]
    if threshold_param:
        bounds = parameters[threshold_param]
        thresholds = sorted({float(bounds.get("MinValue", spec.threshold)), float(spec.threshold),
                             float(bounds.get("MaxValue", spec.threshold))})
    timeout = float(parameters.get("SweeperTimeout", {}).get("Default", 120))
    return spec, thresholds, threshold_param, timeout, sorted(backlog)


# ---------------------------------------------------------------- the sweeper model
SCHEDULES = {"rate(1 minute)": 60, "rate(5 minutes)": 300, "rate(1 hour)": 3600, "rate(1 day)": 86400}
COMPLETE_RUN_S = 20


def runs(interval, early_s, outcomes, phase):
    """[(start, end, completes)] for the sequence `outcomes` of booleans (True: the run
    completes its pass); ticks every `interval` from `phase`, one run at a time."""
    out, tick, free = [], phase, 0.0
    for completes in outcomes:
        start = max(tick, free)
        end = start + (COMPLETE_RUN_S if completes else early_s)
        out.append((start, end, completes))
        free = end
        tick = start + interval
    return out


def backlog_samples(run_list, lag=0.0):
    """The BacklogSeconds data point of each run: at its end, 0 if it completed its pass,
    else the seconds since the start of the run that began the pass."""
    samples, began = [], None
    for start, end, completes in run_list:
        if began is None:
            began = start
        samples.append((end, 0.0 if completes else end - began, end + lag))
        if completes:
            began = None
    return samples


# ---------------------------------------------------------------- the scenarios
class Report:
    """Cells of the results table, (scenario, schedule) by threshold, extra rows, and
    the failures."""

    def __init__(self):
        self.cells, self.rows, self.failures = {}, [], []

    def cell(self, scenario, schedule, threshold, text, ok):
        self.cells.setdefault((scenario, schedule), {})[threshold] = (text, ok)

    def row(self, *cells):
        self.rows.append(cells)

    def failed_cells(self):
        return [key for key, by in self.cells.items() if not all(ok for _, ok in by.values())]

    def fail(self, message):
        self.failures.append(message)


def scenario_a(report, spec, threshold, schedule, interval, early_s, variants):
    """Every run stops early."""
    step = max(interval, early_s)
    bound = threshold + step + spec.period
    count = int((threshold + 3 * step) // step) + 2
    worst, before = 0.0, len(report.failures)
    for phase, extra, lag in variants:
        run_list = runs(interval, early_s, [False] * count, phase)
        samples = backlog_samples(run_list, lag)
        sim = Simulation(spec, samples, until=run_list[-1][1] + lag + 2 * spec.period, range_extra=extra)
        began = run_list[0][0]
        fired = sim.first(ALARM)
        first_over = next(visible for _, value, visible in samples if value > threshold)
        where = f"(a) {schedule}, threshold {threshold:g} s, phase {phase} s, range N+{extra}, lag {lag:g} s"
        if fired is None:
            report.fail(f"{where}: never reached ALARM; transitions {sim.transitions[:6]}")
            continue
        delay = fired - began
        worst = max(worst, delay)
        if delay > bound + lag:
            report.fail(f"{where}: ALARM {delay:g} s after the pass began, later than "
                        f"threshold + interval + period = {bound:g} s (+ lag)")
        if fired < first_over:
            report.fail(f"{where}: ALARM at {fired:g} s, before any run reported a pass older than "
                        f"the threshold (first at {first_over:g} s)")
        if sim.final != ALARM:
            report.fail(f"{where}: left ALARM while every run still stops early ({sim.transitions[-3:]})")
    lag = max(lag for _, _, lag in variants)
    report.cell("(a) every run stops early: ALARM after the pass began (bound)", schedule, threshold,
                f"{worst:g} s (<= {bound + lag:g})" if worst else "never", len(report.failures) == before)


def scenario_b(report, spec, threshold, schedule, interval, early_s, variants):
    """Every pass completes: in each run, and over a few runs well under the threshold."""
    step = max(interval, early_s)
    # The most runs per pass whose oldest report, (k - 2) * step + early_s, stays within
    # half the threshold; at least 2 (one run that stops early, then one that completes).
    k = max(2, min(6, 2 + int((threshold / 2 - early_s) // step)))
    horizon = max(threshold * 2, 4 * step * k)
    patterns = {"1": [True], "k": [False] * (k - 1) + [True]}
    for label, pattern in patterns.items():
        count = int(horizon // step) + 1
        outcomes = (pattern * (count // len(pattern) + 1))[:count]
        oldest, before = 0.0, len(report.failures)
        for phase, extra, lag in variants:
            run_list = runs(interval, early_s, outcomes, phase)
            samples = backlog_samples(run_list, lag)
            oldest = max(oldest, max(v for _, v, _ in samples))
            sim = Simulation(spec, samples, until=run_list[-1][1] + lag + 2 * spec.period, range_extra=extra)
            runs_per_pass = len(pattern)
            if any(state == ALARM for _, state in sim.transitions):
                report.fail(f"(b) {schedule}, threshold {threshold:g} s, passes of {runs_per_pass} run(s), "
                            f"phase {phase} s, range N+{extra}: ALARM ({sim.transitions[:6]})")
            if sim.final != OK:
                report.fail(f"(b) {schedule}, passes of {runs_per_pass} run(s): ends in {sim.final}, not OK")
        ok = len(report.failures) == before
        if label == "1":
            report.cell("(b) every run completes its pass: never ALARM", schedule, threshold,
                        "never" if ok else "ALARM", ok)
        else:
            report.cell("(b) passes of k runs, oldest report: never ALARM", schedule, threshold,
                        f"never (k={k}, {oldest:g} s)" if ok else "ALARM", ok)


def scenario_c(report, spec, threshold, schedule, interval, early_s, variants):
    """Behind until ALARM, then a run completes its pass, then every pass completes."""
    step = max(interval, early_s)
    behind = int((threshold + 2 * step) // step) + 2
    worst, before = 0.0, len(report.failures)
    for phase, extra, lag in variants:
        run_list = runs(interval, early_s, [False] * behind + [True] * 5, phase)
        samples = backlog_samples(run_list, lag)
        sim = Simulation(spec, samples, until=run_list[-1][1] + lag + 3 * spec.period, range_extra=extra)
        completed = samples[behind][2]  # when the completing run's 0 is visible
        where = f"(c) {schedule}, threshold {threshold:g} s, phase {phase} s, range N+{extra}, lag {lag:g} s"
        if sim.state_at(completed - 1) != ALARM:
            report.fail(f"{where}: not in ALARM before the completing run ({sim.transitions[:6]})")
            continue
        recovered = sim.first(OK, after=completed)
        if recovered is None or recovered - completed > spec.period:
            report.fail(f"{where}: not OK within one period of the completing run "
                        f"(visible at {completed:g} s; transitions {sim.transitions[-3:]})")
            continue
        worst = max(worst, recovered - completed)
        if any(s != OK for when, s in sim.transitions if when > recovered):
            report.fail(f"{where}: left OK again while passes complete ({sim.transitions[-3:]})")
    report.cell(f"(c) recovery: OK after the run that completes (<= {spec.period} s)", schedule, threshold,
                f"{worst:g} s", len(report.failures) == before)


# (phase of the first tick, evaluation range beyond N, metric lag in seconds)
VARIANTS = [(0, 0, 0.0), (37, 0, 0.0), (0, 2, 0.0), (37, 2, 0.0)]

# Designs the template's was chosen over, one setting changed each.
MUTANTS = [
    ("TreatMissingData missing", {"treat_missing": "missing"}),
    ("TreatMissingData notBreaching", {"treat_missing": "notBreaching"}),
    ("TreatMissingData breaching", {"treat_missing": "breaching"}),
    ("Statistic Maximum", {"statistic": "Maximum"}),
    ("3 of 3 periods", {"evaluation_periods": 3, "datapoints_to_alarm": 3}),
]


def check_design(report, spec, thresholds, early_s):
    """Scenarios (a), (b) and (c) for every schedule and threshold."""
    for threshold in thresholds:
        s = AlarmSpec(spec.statistic, spec.period, spec.n, threshold, spec.comparison, spec.treat_missing, spec.m)
        for schedule in ("rate(1 minute)", "rate(1 hour)", "rate(1 day)"):
            interval = SCHEDULES[schedule]
            scenario_a(report, s, threshold, schedule, interval, early_s, VARIANTS)
            scenario_b(report, s, threshold, schedule, interval, early_s, VARIANTS)
            scenario_c(report, s, threshold, schedule, interval, early_s, VARIANTS)


def old_design(report):
    """The replaced alarm, inline: Minimum of Incomplete (1 per run that stopped early)."""
    spec = AlarmSpec("Minimum", 900, 3, 1, "GreaterThanOrEqualToThreshold", "notBreaching")
    expected = {"rate(1 minute)": True, "rate(5 minutes)": True, "rate(1 hour)": False, "rate(1 day)": False}
    for schedule, fires in expected.items():
        interval = SCHEDULES[schedule]
        days = 3
        run_list = runs(interval, min(interval, 119), [False] * int(days * 86400 // interval), 0)
        samples = [(end, 1.0, end) for _, end, _ in run_list]
        sim = Simulation(spec, samples, until=days * 86400, range_extra=2)
        fired = sim.first(ALARM)
        ok = (fired is not None) == fires
        report.row(f"old Incomplete alarm, every run stops early, {schedule}",
                   f"ALARM {fired:g} s after the first run" if fired is not None
                   else f"never ALARM in {days} days (stays {sim.final})",
                   "ok" if ok else "FAIL")
        if not ok:
            report.fail(f"old design on {schedule}: expected {'ALARM' if fires else 'no ALARM'}, "
                        f"got transitions {sim.transitions[:6]}")
    return spec


def print_table(rows, header):
    rows = [list(r) for r in rows]
    header = list(header)
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print(line)
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def main(argv):
    path = argv[1] if len(argv) > 1 else DEFAULT_TEMPLATE
    if not os.path.exists(path):
        print(f"alarm_eval: {path} not found: run the transform first (.ci/infra.sh, step 2)", file=sys.stderr)
        return 1
    failures = self_checks()
    if failures:
        print("alarm_eval: FAIL: the evaluator disagrees with CloudWatch's documented rules:", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("alarm_eval: the evaluator reproduces the user guide's tables and rules "
          "(every TreatMissingData, statistic and comparison)")
    try:
        spec, thresholds, threshold_param, timeout, names = load_backlog_alarm(path)
    except Failure as e:
        print(f"alarm_eval: FAIL: {e}", file=sys.stderr)
        return 1
    early_s = timeout - 1
    print(f"alarm_eval: {', '.join(names)} in {path}: BacklogSeconds, {spec.describe()}; "
          f"thresholds {', '.join(f'{t:g}' for t in thresholds)} s ({threshold_param or 'literal'}: "
          f"bounds and default); runs that stop early last {early_s:g} s (SweeperTimeout default - 1 s)")
    report = Report()
    check_design(report, spec, thresholds, early_s)
    # Metrics that reach CloudWatch 90 s late (EMF is extracted from the log stream),
    # still inside an evaluation range of N + 2 periods.
    late = [(0, 2, 90.0), (37, 2, 90.0)]
    for schedule in ("rate(1 minute)", "rate(1 day)"):
        lagged = Report()
        scenario_a(lagged, spec, spec.threshold, schedule, SCHEDULES[schedule], early_s, late)
        scenario_c(lagged, spec, spec.threshold, schedule, SCHEDULES[schedule], early_s, late)
        for (scenario, _), by in lagged.cells.items():
            text, ok = by[spec.threshold]
            report.row(f"{scenario[:3]} {schedule}, metrics 90 s late, threshold {spec.threshold:g}", text,
                       "ok" if ok else "FAIL")
        report.failures += lagged.failures
    # The same checks must reject the designs this one was chosen over: else they test
    # nothing. Each variant changes one setting of the template's alarm.
    for label, changes in MUTANTS:
        fields = dict(statistic=spec.statistic, period=spec.period, evaluation_periods=spec.n,
                      threshold=spec.threshold, comparison=spec.comparison,
                      treat_missing=spec.treat_missing, datapoints_to_alarm=spec.m)
        fields.update(changes)
        mutant = AlarmSpec(**fields)
        caught = Report()
        check_design(caught, mutant, [spec.threshold], early_s)
        failed = {}
        for scenario, schedule in caught.failed_cells():
            name = schedule.split("(")[1].rstrip(")").replace("1 ", "")
            if name not in failed.setdefault(scenario[:3], []):
                failed[scenario[:3]].append(name)
        summary = "; ".join(f"{k} {', '.join(v)}" for k, v in sorted(failed.items()))
        report.row(f"rejected design: {label}", f"fails {summary}" if failed else "passes every check",
                   "ok" if failed else "FAIL")
        if not failed:
            report.fail(f"variant {label} ({mutant.describe()}) passes every check: the checks are too weak")
    old = old_design(report)
    print()
    header = ["scenario", "schedule"] + [f"threshold {t:g} s" for t in thresholds]
    table = []
    for (scenario, schedule), by in report.cells.items():
        table.append([scenario, schedule] + [by[t][0] + ("" if by[t][1] else " FAIL") for t in thresholds])
    print_table(table, header)
    print()
    print_table(report.rows, ("more cases", "result", "check"))
    print(f"(the old alarm: {old.describe()}, evaluation range N+2)")
    if report.failures:
        print(f"alarm_eval: FAIL, {len(report.failures)} problem(s):", file=sys.stderr)
        for f in report.failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    cases = sum(len(by) for by in report.cells.values()) + len(report.rows)
    print(f"alarm_eval: PASS, {cases} cases (the template's alarm: each over 2 phases and "
          f"2 evaluation ranges)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
