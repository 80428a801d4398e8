"""From raw per-repetition results to medians, ratios and the Markdown report.

- ``derive`` adds the FLOP rate of a fine-tuning run: 6 N T / s, with N the encoder's
  non-embedding parameters, T the real (non-pad) tokens trained on and s the train seconds
  (excluding enctune's evaluation time when it reports it); and MFU, that rate over the
  measured fp32 GEMM peak. Counting real tokens only makes padding show up as lost
  throughput rather than as "useful" FLOPs.
- ``summarise`` takes, per point and variant, the median of every numeric figure over the
  repetitions that succeeded (the median resists one disturbed repetition), keeps
  non-numeric fields when all repetitions agree, and computes the row's ratios on medians.
- ``markdown`` renders results.json as tables: the command line first, then per row the
  medians and the ratios, then the machine and the versions.
"""

from __future__ import annotations

import statistics


def derive(result: dict, machine: dict) -> None:
    n = machine.get("encoder_non_embedding_params")
    peak = (machine.get("gemm") or {}).get("fp32_gflops")
    tokens, seconds = result.get("train_tokens"), result.get("train_seconds")
    if result.get("status") != "ok" or not (n and tokens and seconds):
        return
    if result.get("eval_seconds"):
        seconds = seconds - result["eval_seconds"]
    gflops = 6 * n * tokens / max(seconds, 1e-9) / 1e9
    result["gflops_per_second"] = round(gflops, 2)
    if peak:
        result["mfu"] = round(gflops / peak, 4)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _median_of(results: list[dict]) -> dict:
    keys = {k for r in results for k in r}
    out = {}
    for k in sorted(keys):
        values = [r[k] for r in results if k in r and r[k] is not None]
        if not values:
            continue
        if all(_is_number(v) for v in values):
            out[k] = round(statistics.median(values), 4)
        elif all(isinstance(v, str) for v in values) and len(set(values)) == 1:
            out[k] = values[0]
    return out


def summarise(cases: list[dict], ratios: list) -> dict:
    """``{"medians": {point: {variant: {...}}}, "ratios": [...]}`` from the raw cases of one row."""
    groups: dict[str, dict[str, list[dict]]] = {}
    for c in cases:
        groups.setdefault(c["point"], {}).setdefault(c["variant"], []).append(c["result"])
    medians: dict[str, dict[str, dict]] = {}
    for point, variants in groups.items():
        for variant, results in variants.items():
            ok = [r for r in results if r.get("status") == "ok"]
            m = _median_of(ok)
            m["ok_reps"], m["reps"] = len(ok), len(results)
            errors = sorted({r.get("error", "") for r in results if r.get("status") != "ok"})
            if errors:
                m["errors"] = errors
            medians.setdefault(point, {})[variant] = m
    out_ratios = []
    for point, variants in medians.items():
        for spec in ratios:
            num = variants.get(spec.num_variant, {}).get(spec.num_metric)
            den = variants.get(spec.den_variant, {}).get(spec.den)
            value = None
            if _is_number(num) and _is_number(den):
                value = round(num - den, 4) if spec.kind == "diff" else (round(num / den, 3) if den else None)
            out_ratios.append({"point": point, "label": spec.label, "kind": spec.kind, "value": value,
                               "better": spec.better})
    return {"medians": medians, "ratios": out_ratios}


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.4f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v).replace("|", "\\|")


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c.replace("|", "\\|") for c in row) + " |"
              for row in rows]
    return lines


def _row_section(name: str, row: dict) -> list[str]:
    lines = [f"## {name}", "", row["description"], ""]
    metrics = row["metrics"]
    summary = row["summary"]
    multi = any(p for p in summary["medians"])
    header = (["point"] if multi else []) + ["variant", "ok/reps"] + [
        m["header"] + {"higher": " (↑)", "lower": " (↓)"}.get(m["better"], "") for m in metrics]
    table = []
    failures = []
    for point, variants in summary["medians"].items():
        for variant, m in variants.items():
            table.append(([point] if multi else []) + [variant, f"{m['ok_reps']}/{m['reps']}"] +
                         [m.get(x["key"]) for x in metrics])
            for e in m.get("errors", []):
                failures.append(f"- `{variant}`{' at ' + point if point else ''}: {e.strip()[:600]}")
    if table:
        lines += _table(header, table)
    else:
        lines.append("_No variant ran._")
    if summary["ratios"]:
        lines += ["", "Ratios (on medians; ↑ = higher favours the first-named variant, ↓ = lower does):", ""]
        rat = [([r["point"]] if multi else []) + [r["label"] + {"higher": " (↑)", "lower": " (↓)"}.get(
            r["better"], ""), r["value"]] for r in summary["ratios"]]
        lines += _table((["point"] if multi else []) + ["comparison", "value"], rat)
    if row.get("setup", {}).get("predict_setup"):
        st = row["setup"]["predict_setup"]
        lines += ["", f"Set-up: model folder trained with the trainer_best recipe, status {st.get('status')}, "
                      f"train {_fmt(st.get('train_seconds'))} s, test accuracy {_fmt(st.get('test_accuracy'))}."]
    if row.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in row["notes"]]
    if failures:
        lines += ["", "Failures:", ""] + failures
    return lines + [""]


def _machine_section(machine: dict) -> list[str]:
    if machine.get("status") not in (None, "ok"):
        return ["## Machine", "", f"Machine description failed: {machine.get('error')}", ""]
    gemm = machine.get("gemm") or {}
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in (machine.get("cpu_flags") or {}).items())
    bf16 = gemm.get("bf16_gflops")
    rows = [["CPU", machine.get("cpu_model")], ["cores (nproc)", machine.get("nproc")],
            ["flags", flags], ["memory GB", machine.get("memory_gb")],
            ["torch threads", machine.get("torch_threads")],
            ["fp32 GEMM peak (2048^3, best of 10)", f"{_fmt(gemm.get('fp32_gflops'))} GFLOP/s"],
            ["bf16 GEMM peak", f"{_fmt(bf16)} GFLOP/s" if bf16 is not None else gemm.get("bf16_note")],
            ["encoder", machine.get("encoder_path")],
            ["encoder params (non-embedding)",
             f"{_fmt(machine.get('encoder_params'))} ({_fmt(machine.get('encoder_non_embedding_params'))})"],
            ["platform", machine.get("platform")]]
    versions = [[k, v or "not installed"] for k, v in (machine.get("versions") or {}).items()]
    return (["## Machine", ""] + _table(["", ""], rows) + ["", "## Versions", ""] +
            _table(["package", "version"], versions) + [""])


def markdown(results: dict) -> str:
    lines = ["# enctune benchmark results", "", "```", results["command"], "```", ""]
    if results["settings"].get("quick"):
        lines += ["**QUICK MODE: tiny data, for checking the harness only. These figures are not benchmarks.**", ""]
    lines += [f"Started {results['started']}, took {_fmt(results.get('duration_seconds'))} s; "
              f"{results['settings']['reps']} repetition(s), each variant in a fresh process, variants interleaved "
              f"within each repetition; medians shown. Load average at start {results.get('load_avg_start')}, "
              f"at end {results.get('load_avg_end')}.", ""]
    for name, row in results["rows"].items():
        lines += _row_section(name, row)
    lines += _machine_section(results.get("machine") or {})
    return "\n".join(lines)
