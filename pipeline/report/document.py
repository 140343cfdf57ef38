"""The report, top to bottom, as one list of blocks: alarms, headline, threshold, confusion matrix, per-group figures,
plots, the data story, training, label conflicts, the worst examples with their explanations, and the configuration
that ran. Built from `Inputs` alone: nothing is read or scored here."""
from __future__ import annotations

from .blocks import Alarm, Block, Code, Heading, Highlight, Image, Para, Table, dig, num, val
from .data_story import data_alarms, data_story
from .facts import AT_THRESHOLD, PLOTS, Inputs, headline_table, run_kind_sentences


def document(a: Inputs) -> list[Block]:
    """The whole report, top to bottom."""
    m = a.metrics
    blocks: list[Block] = [Heading(f"sgpipe report: {a.run_name}", 1)]
    if m["alarm"]:
        blocks.append(Alarm(m["alarm"]))
    blocks += data_alarms(a)
    blocks += _headline(a) + _threshold(a) + _confusion(a)
    blocks += _groups("Per language", m["per_lang"], m["baseline"]["per_lang"] if m["baseline"] else None)
    blocks += _one_scale(a)  # the ensemble's too: _side_by_side gives only the plain ROC AUC
    blocks += _groups("Per source", m["per_source"], m["baseline"]["per_source"] if m["baseline"] else None)
    blocks += _side_by_side(a) + _language_thresholds(a) + _out_of_source(a)
    blocks += [Heading("Plots")] + [_plot(a, f) for f in PLOTS if f != "training.png"]
    blocks += data_story(a) + _training(a) + _conflicts(a)
    blocks += [Heading("Worst examples")]
    blocks += _examples(a, "False positives (benign scripts with the highest scores)", a.false_positives,
                        "false positive")
    blocks += _examples(a, "False negatives (malicious scripts with the lowest scores)", a.false_negatives,
                        "false negative")
    blocks += _faithfulness(a)
    blocks += [Heading("Resolved configuration"), Code(a.config_yaml)]
    return blocks


def _headline(a: Inputs) -> list[Block]:
    m = a.metrics
    base = f"; baseline: {m['baseline']['name']}" if m["baseline"] else "; no baseline was run"
    kind = [Para(s) for s in run_kind_sentences(m["run_kind"], m)] if m.get("run_kind") else []
    return [Heading("Headline (test set)"), *kind,
            Para(f"{val(m['n'])} test scripts ({val(m['n_pos'])} malicious, {val(m['n_neg'])} benign), model at "
                 f"threshold {num(m['threshold'])} ({m['threshold_policy']}){base}. Intervals: stratified percentile "
                 "bootstrap on test, where evaluate computed them."),
            headline_table(m)]


def _threshold(a: Inputs) -> list[Block]:
    m, base = a.metrics, a.metrics["baseline"]
    st = m["threshold_stability"] or {}
    rows = [["threshold", num(m["threshold"])], ["policy", m["threshold_policy"]]]
    if m["threshold_target"] is not None:
        rows += [["target", val(m["threshold_target"])], ["target met on val", val(m["threshold_met"])]]
    rows += [["bootstrap stability on val (p5 / p50 / p95)",
              f"{num(st.get('p5'))} / {num(st.get('p50'))} / {num(st.get('p95'))} ({val(st.get('n_boot'))} resamples)"],
             ["val scripts", val(m["val_n"])]]
    if base:
        rows.append(["baseline threshold", num(base["threshold"])])
    at_half = m["at_0_5"] or {}
    return [Heading("Threshold"),
            Para("Chosen on the validation split, never on test. A wide p5-p95 range means a small or noisy val set "
                 "and a threshold that will move between runs."),
            Table(["item", "value"], rows),
            Heading("Metrics at the chosen threshold and at 0.5", 3),
            Table(["metric", f"at {num(m['threshold'])}", "at 0.5"],
                  [[label, num(m[k]), num(at_half.get(k))] for k, label in AT_THRESHOLD])]


def _confusion(a: Inputs) -> list[Block]:
    c = a.metrics["confusion"]
    if not c:
        return [Heading("Confusion matrix"), Para("evaluate/metrics.json holds no confusion matrix.")]
    (tn, fp), (fn, tp) = c
    return [Heading("Confusion matrix"),
            Table(["", "predicted benign", "predicted malicious"],
                  [["actual benign", tn, fp], ["actual malicious", fn, tp]])]


def _groups(title: str, groups: dict, base_groups: dict | None) -> list[Block]:
    if not groups:
        return [Heading(title), Para("none")]
    header = ["group", "n", "malicious", "sensitivity", "specificity", "ROC AUC"]
    header += ["baseline ROC AUC"] if base_groups is not None else []
    rows = []
    for name, g in groups.items():
        row = [name, val(g.get("n")), val(g.get("n_pos")), num(g.get("sensitivity")), num(g.get("specificity")),
               num(g.get("roc_auc"))]
        rows.append(row + ([num(dig(base_groups, name, "roc_auc"))] if base_groups is not None else []))
    return [Heading(title), Table(header, rows)]


def _one_scale(a: Inputs) -> list[Block]:
    """Test ROC AUC with every (language, label) cell weighted equally, beside the plain one."""
    m, key = a.metrics, "roc_auc_language_balanced"
    if m.get(key) is None:
        return []
    others = [f"{who} {num(m[who].get(key))}" for who in ("baseline", "ensemble") if m.get(who)]
    beside = f" ({', '.join(others)})" if others else ""
    return [Para(f"ROC AUC with every (language, label) cell weighted equally: {num(m[key])}"
                 f"{beside}, against {num(m['roc_auc'])} unweighted. It is what the score ranks when no language is "
                 "more common, or more often malicious, than another: a model that leans on a language's share of "
                 "malicious scripts scores lower here, and scores on one scale across languages do not.")]


def _side_by_side(a: Inputs) -> list[Block]:
    """ROC AUC of model, baseline and ensemble, overall and per language (evaluation.ensemble: tfidf)."""
    m, base, ens = a.metrics, a.metrics["baseline"], a.metrics.get("ensemble")
    if not ens:
        return []
    rows = [["all", val(m["n"]), num(m["roc_auc"]), num(base["roc_auc"] if base else None), num(ens["roc_auc"])]]
    for lang, g in m["per_lang"].items():
        rows.append([lang, val(g.get("n")), num(g.get("roc_auc")), num(dig(base or {}, "per_lang", lang, "roc_auc")),
                     num(dig(ens, "per_lang", lang, "roc_auc"))])
    w = ens.get("weights") or {}
    return [Heading("Model, baseline and ensemble (test ROC AUC)"),
            Para(f"{ens.get('name')}: P = sigmoid({num(w.get('model_weight'))} x logit(model) + "
                 f"{num(w.get('baseline_weight'))} x logit(baseline) + {num(w.get('intercept'))}); ensemble threshold "
                 f"{num(ens['threshold'])} from out-of-fold val scores, sensitivity {num(ens['sensitivity'])}, "
                 f"specificity {num(ens['specificity'])} on test."),
            Table(["language", "n", "model", "baseline", "ensemble"], rows)]


def _language_thresholds(a: Inputs) -> list[Block]:
    """Per-language thresholds fit on val beside the global one, with test figures at each."""
    plt = a.metrics.get("per_language_thresholds")
    if not plt:
        return []
    m, at = a.metrics, plt.get("test") or {}
    rows = []
    for lang, t in plt["thresholds"].items():
        st = t.get("stability") or {}
        rows.append([lang, val(t["n_val"]), num(t["threshold"]), t["source"],
                     f"{num(st.get('p5'))}-{num(st.get('p95'))}" if st else "",
                     num(dig(m, "per_lang", lang, "sensitivity")), num(dig(m, "per_lang", lang, "specificity")),
                     num(dig(at, "per_lang", lang, "sensitivity")), num(dig(at, "per_lang", lang, "specificity"))])
    rows.append(["all", val(m["val_n"]), num(plt["global_threshold"]), "global", "", num(m["sensitivity"]),
                 num(m["specificity"]), num(at.get("sensitivity")), num(at.get("specificity"))])
    return [Heading("Per-language thresholds"),
            Para(f"Chosen on val by the same policy where a language has at least {val(plt['min_count'])} val scripts "
                 "(and 10% of each label); elsewhere the global threshold. Test figures at the global threshold, then "
                 "at the per-language ones. predict uses the global threshold."),
            Table(["language", "val n", "threshold", "from", "val bootstrap p5-p95", "sensitivity (global)",
                   "specificity (global)", "sensitivity (per language)", "specificity (per language)"], rows)]


def _out_of_source(a: Inputs) -> list[Block]:
    """ROC AUC on the splits of whole held-out sources (data.split.source_*_size) beside test's, per language."""
    held = a.metrics.get("out_of_source")
    if not held:
        return []
    m, base = a.metrics, a.metrics["baseline"]
    sets = [("test", {"model": {"n": m["n"], "roc_auc": m["roc_auc"], "per_lang": m["per_lang"]}, "baseline": base}),
            *held.items()]
    rows = []
    for lang in ["all", *sorted({lang for _, f in sets for lang in f["model"].get("per_lang", {})})]:
        row = [lang]
        for _, f in sets:
            g = f["model"] if lang == "all" else dig(f["model"], "per_lang", lang) or {}
            b = (f.get("baseline") or {}) if lang == "all" else dig(f.get("baseline") or {}, "per_lang", lang) or {}
            row += [val(g.get("n")), num(g.get("roc_auc")), num(b.get("roc_auc"))]
        rows.append(row)
    selected = dig(a.manifests, "train", "config", "training", "select_on") or "val"
    return [Heading("Out-of-source figures"),
            Para("val_source and test_source hold whole sources that no training, val or test script shares: how the "
                 "model does on collections it never met, beside test (in-distribution). The checkpoint was selected "
                 f"on {selected}; every threshold comes from val. Figures on a few sources move a lot between seeds."),
            Table(["language", *[f"{name} {col}" for name, _ in sets for col in ("n", "model", "baseline")]], rows)]


def _plot(a: Inputs, file: str) -> Block:
    reason = a.plots.get(file)
    return Image(file, PLOTS[file]) if reason is None else Para(f"{file} was not drawn: {reason}.")

def _training(a: Inputs) -> list[Block]:
    t = a.metrics["counts"].get("train", {})
    evals = sum(1 for h in a.history if "eval_loss" in h)
    rows = [["steps", val(t.get("steps"))], ["epochs", val(t.get("epochs"))], ["train rows", val(t.get("train_rows"))],
            ["val rows", val(t.get("val_rows"))], ["train loss (mean)", val(t.get("train_loss"))],
            ["val loss at start", val(t.get("val_loss_start"))], ["val loss at end", val(t.get("val_loss_end"))],
            ["val ROC AUC at end", val(t.get("val_roc_auc_end"))], ["best checkpoint", val(t.get("best_checkpoint"))],
            ["resumed from", val(t.get("resumed_from"))], ["backend", val(t.get("backend"))],
            ["device", val(t.get("device"))], ["trainable parameters", val(t.get("trainable_parameters"))],
            ["seconds", val(t.get("train_seconds"))],
            ["log history", f"{len(a.history)} entries, {evals} evaluations"]]
    return [Heading("Training"), Table(["item", "value"], rows), _plot(a, "training.png")]


def _conflicts(a: Inputs) -> list[Block]:
    total = dig(a.metrics, "counts", "dedup", "conflicts")
    out: list[Block] = [Heading("Label conflicts")]
    if not a.conflicts:
        return out + [Para("No near-duplicate cluster held both labels.")]
    shown = f"the first {len(a.conflicts)} of {val(total)}" if total and total > len(a.conflicts) else "all of them"
    out.append(Para(f"Near-duplicate clusters holding both labels ({shown}; the full list is dedup/conflicts.jsonl):"))
    out.append(Table(["ids", "votes", "resolution", "sources"],
                     [[", ".join(i[:12] for i in c.get("ids", [])), val(c.get("votes")), c.get("resolution"),
                       val(c.get("sources"))] for c in a.conflicts]))
    return out


def _examples(a: Inputs, title: str, rows: list[dict], what: str) -> list[Block]:
    out: list[Block] = [Heading(title, 3)]
    if not rows:
        return out + [Para(f"None: no {what} at the chosen threshold.")]
    for i, p in enumerate(rows, 1):
        out.append(Para(f"{what.capitalize()} {i}: score {p['score']:.4f}, language {p.get('lang')}, source "
                        f"{p.get('source')}, id {p['id'][:12]}"))
        text = p["text"]
        if text is None:
            out.append(Para("Text not found in split/test.jsonl (evaluate scored another file)."))
            continue
        e = p.get("explanation")
        marks = {u.line: u.contribution for u in e.lines if u.line == u.line_end} if e else {}
        out.append(Highlight(text[:a.excerpt_chars], marks) if e else Code(text[:a.excerpt_chars]))
        if len(text) > a.excerpt_chars:
            out.append(Para(f"(first {a.excerpt_chars} of {len(text)} characters)"))
        if e and e.lines:
            out.append(Table(["line", "contribution", "text"],
                             [[u.line if u.line == u.line_end else f"{u.line}-{u.line_end}", f"{u.contribution:+.4f}",
                               u.text] for u in e.lines]))
    return out


def _faithfulness(a: Inputs) -> list[Block]:
    out: list[Block] = [Heading("Explanations: faithfulness")]
    if a.explain_note:
        out.append(Para(a.explain_note))
    if not a.faithfulness:
        return out + ([] if a.explain_note else [Para("Not measured (report.faithfulness_scripts is 0).")])
    out.append(Para("Worst examples mark their top lines: the lines whose removal lowers P(malicious) most "
                    "(occlusion through predict's own prompt, truncation and scoring; `sgpipe explain`). Are they the "
                    "lines that matter? On true positives of the test split, the mean drop in P(malicious) when each "
                    "script's top-k lines are removed, beside removing k random lines (fixed seed); a script counts "
                    "for k when it has more than k non-blank lines the model read."))
    return out + [Table(["k", "scripts", "mean drop, top-k lines", "mean drop, k random lines"],
                        [[r["k"], r["n"], num(r["top_drop"]), num(r["random_drop"])] for r in a.faithfulness])]
