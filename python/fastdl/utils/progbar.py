"""Keras 3's progress bar (``keras.utils.Progbar``), written to ``sys.stdout``.

On a terminal (``sys.stdout.isatty()``), verbose=1 redraws one line with ``\\r`` at most every
``interval`` seconds::

    782/782 ━━━━━━━━━━━━━━━━━━━━ 12s 7ms/step - accuracy: 0.4561 - loss: 1.5142

(step count and time bold, the done part of the bar green, the rest white/grey: Keras's ANSI
codes). Elsewhere (a pipe, a file, a CI log) verbose=1 prints that line once, when the bar is
finalized, without escape codes or carriage returns, where Keras would print a new line at every
update. verbose=2 prints ``782/782 - 12s - 7ms/step - accuracy: ... - loss: ...`` when finalized;
verbose=0 prints nothing.
"""
import math
import sys
import time

_BOLD, _GREEN, _WHITE, _RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"
_BAR_CHAR = "\u2501"   # '━'
_clock = time.time      # the clock (tests substitute a fake one)


def _write(message):
    """Write and flush; fall back to ASCII where stdout cannot encode the bar character."""
    out = sys.stdout
    if out is None:
        return
    try:
        out.write(message)
    except UnicodeEncodeError:
        enc = getattr(out, "encoding", None) or "ascii"
        message = message.replace(_BAR_CHAR, "=")
        out.write(message.encode(enc, errors="ignore").decode(enc))
    out.flush()


def format_time_per_unit(time_per_unit, unit_name="step"):
    """`' 7ms/step'` — Keras's format: s when >= 1 s (or 0), ms when >= 1 ms, else us."""
    if time_per_unit >= 1 or time_per_unit == 0:
        return f" {time_per_unit:.0f}s/{unit_name}"
    if time_per_unit >= 1e-3:
        return f" {time_per_unit * 1e3:.0f}ms/{unit_name}"
    return f" {time_per_unit * 1e6:.0f}us/{unit_name}"


def format_eta(eta):
    if eta > 3600:
        return "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
    if eta > 60:
        return "%d:%02d" % (eta // 60, eta % 60)
    return "%ds" % eta


def format_value(value):
    """A metric as Keras prints it: 4 decimals, scientific notation when |v| <= 1e-3."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return f" {value}"
    return f" {v:.4f}" if abs(v) > 1e-3 else f" {v:.4e}"


class Progbar:
    """Displays a progress bar.

    Args:
        target: total number of steps expected, None if unknown.
        width: progress bar width on screen.
        verbose: 0 (silent), 1 (progress bar), 2 (one line when finalized).
        interval: minimum time between two redraws on a terminal (seconds).
        stateful_metrics: names of metrics shown as given (not averaged over updates).
        stateless_metrics: alternatively, the names of the only metrics to average.
            Without either, every metric is averaged over the updates, like Keras.
        unit_name: display name of a step ("step" or "sample").
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 stateless_metrics=None, unit_name="step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError("Only one of `stateful_metrics` and `stateless_metrics` can be "
                             "provided.")
        if target is not None and (isinstance(target, bool) or not isinstance(target, int)
                                   or target < 0):
            try:
                ok = not isinstance(target, bool) and int(target) == target and target >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"Progbar: `target` must be an int >= 0 or None. Received: "
                                 f"target={target!r}")
            target = int(target)
        if verbose not in (0, 1, 2):
            raise ValueError(f"Progbar: `verbose` must be 0, 1 or 2. Received: "
                             f"verbose={verbose!r}")
        self.target = target
        self.width = int(width)
        self.verbose = verbose
        self.interval = float(interval)
        self.unit_name = unit_name
        if stateful_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = set(stateful_metrics), None
        elif stateless_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = None, set(stateless_metrics)
        else:
            self.stateful_metrics, self.stateless_metrics = set(), None
        # True when no metric is averaged: update() then only keeps a reference to the values
        self._all_stateful = self.stateless_metrics is not None and not self.stateless_metrics
        try:
            self._dynamic_display = bool(sys.stdout.isatty())
        except (AttributeError, ValueError):
            self._dynamic_display = False
        self._seen_so_far = 0
        self._values = {}          # name -> [sum, count] (averaged) or [value, 1] (stateful)
        self._values_order = []
        self._latest = None        # latest values when _all_stateful
        self._start = _clock()
        self._last_update = 0.0
        self._time_after_first_step = None
        self._prev_total_width = 0
        self._sort_names = False   # ProgbarLogger: show the metrics sorted by name

    # ------------------------------------------------------------------ updates
    def update(self, current, values=None, finalize=None):
        """Update the bar to step `current` (1-based count of steps done).

        `values`: a dict or a list of ``(name, value)``; names in `stateful_metrics` are shown
        as given, the others averaged over the updates (weighted by the steps between them).
        `finalize`: whether this is the last update (default: ``current >= target``).
        """
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        if values:
            if self._all_stateful and isinstance(values, dict):
                self._latest = values
            else:
                self._accumulate(current, values, finalize)
        self._seen_so_far = current
        now = _clock()
        if current == 1:
            self._time_after_first_step = now
        verbose = self.verbose
        if verbose == 1:
            if not finalize and (not self._dynamic_display
                                 or now - self._last_update < self.interval):
                return
            self._render_bar(current, now, finalize)
            self._last_update = now
        elif verbose == 2 and finalize:
            self._render_line(current, now)
            self._last_update = now

    def add(self, n, values=None):
        self.update(self._seen_so_far + n, values)

    def _accumulate(self, current, values, finalize):
        if self._latest is not None:   # fold the fast-path values in first
            latest, self._latest = self._latest, None
            for k in sorted(latest):
                if k not in self._values:
                    self._values_order.append(k)
                self._values[k] = [latest[k], 1]
        items = values.items() if isinstance(values, dict) else values
        if isinstance(values, dict):
            items = sorted(items)
        for k, v in items:
            if k not in self._values:
                self._values_order.append(k)
            if self.stateful_metrics is not None:
                stateless = k not in self.stateful_metrics
            else:
                stateless = k in self.stateless_metrics
            if stateless and not finalize:
                base = max(current - self._seen_so_far, 1)
                acc = self._values.get(k)
                if acc is None:
                    self._values[k] = [v * base, base]
                else:
                    acc[0] += v * base
                    acc[1] += base
            else:
                # stateful, or the final update (Keras shows the final values as given)
                self._values[k] = [v, 1]

    def _metric_items(self):
        latest = self._latest
        if latest is not None:
            for k in sorted(latest):
                if k not in self._values:
                    self._values_order.append(k)
                self._values[k] = [latest[k], 1]
            self._latest = None
        order = sorted(self._values_order) if self._sort_names else self._values_order
        out = []
        for k in order:
            total, count = self._values[k]
            try:
                avg = total / max(1, count)
            except TypeError:
                avg = total
            out.append((k, avg))
        return out

    # ------------------------------------------------------------------ formatting
    def _estimate_step_duration(self, current, now):
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            return (now - self._time_after_first_step) / (current - 1)
        return (now - self._start) / current

    def _render_bar(self, current, now, finalize):
        dynamic = self._dynamic_display
        target = self.target
        time_per_unit = self._estimate_step_duration(current, now)
        if target is not None and target > 0:
            numdigits = int(math.log10(target)) + 1
            count = f"%{numdigits}d/%d" % (current, target)
            done = min(int(self.width * (current / target)), self.width)
            done_bar, rest_bar = _BAR_CHAR * done, _BAR_CHAR * (self.width - done)
            if dynamic:
                bar = f"{_BOLD}{count}{_RESET} "
                if done > 0:
                    bar += f"{_GREEN}{done_bar}{_RESET}"
                bar += f"{_WHITE}{rest_bar}{_RESET}"
            else:
                bar = f"{count} {done_bar}{rest_bar}"
            plain_len = len(count) + 1 + self.width
        else:
            bar = "%7d/Unknown" % current
            plain_len = len(bar)
        if target is not None and target > 0 and not finalize:
            when = format_eta(time_per_unit * (target - current))
        else:
            when = f"{now - self._start:.0f}s"
        info_plain = " " + when + format_time_per_unit(time_per_unit, self.unit_name)
        for k, v in self._metric_items():
            info_plain += f" - {k}:" + format_value(v)
        if dynamic:
            info = f" {_BOLD}{when}{_RESET}" + info_plain[len(when) + 1:]
            total_width = plain_len + len(info_plain)
            message = "\r" + bar + info
            if self._prev_total_width > total_width:
                message += " " * (self._prev_total_width - total_width)
            self._prev_total_width = total_width
            if finalize:
                message += "\n"
        else:
            message = bar + info_plain + "\n"
        _write(message)

    def _render_line(self, current, now):
        target = self.target if self.target is not None else current
        if target > 0:
            numdigits = int(math.log10(target)) + 1
            count = f"%{numdigits}d/%d" % (current, target)
        else:
            count = f"{current}/{target}"
        time_per_unit = self._estimate_step_duration(current, now)
        info = f"{count} - {now - self._start:.0f}s -"
        info += format_time_per_unit(time_per_unit, self.unit_name)
        for k, v in self._metric_items():
            info += f" - {k}:" + format_value(v)
        _write(info + "\n")
