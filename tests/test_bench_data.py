"""bench.data's few-shot sampler: the samples every few-shot, self-training and pre-training bench draws."""

from __future__ import annotations

import json
import random

from bench.data import per_class_indices, write_sample


def rows(n=60):
    return [{"text": f"text {i}", "label": ["b", "a", "c"][i % 3]} for i in range(n)]


def test_k_rows_of_every_label_the_same_for_the_same_seed():
    data = rows()
    picked = per_class_indices(data, 4, seed=1)
    assert [data[i]["label"] for i in picked] == ["a"] * 4 + ["b"] * 4 + ["c"] * 4  # labels in sorted order
    assert picked == per_class_indices(data, 4, seed=1) and picked != per_class_indices(data, 4, seed=2)
    assert len(per_class_indices(data, 50, seed=1)) == 60  # a label with fewer rows gives all it has


def test_the_draw_is_the_one_the_published_few_shot_rows_used():
    """random.seed(s) then random.sample per sorted label, as the scripts drew before the helper existed."""
    data = rows()
    random.seed(3)
    by: dict[str, list[dict]] = {}
    for r in data:
        by.setdefault(r["label"], []).append(r)
    before = [r for lab in sorted(by) for r in random.sample(by[lab], 5)]
    assert [data[i] for i in per_class_indices(data, 5, seed=3)] == before


def test_write_sample_writes_train_test_and_the_unlabelled_rest(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows()))
    (src / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(9)))
    sizes = write_sample(src, tmp_path / "out", 2, 0, test_rows=5, pool=tmp_path / "pool.jsonl", file_order=True)
    assert sizes == {"train": 6, "test": 5, "pool": 54}
    train = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    pool = [json.loads(x) for x in (tmp_path / "pool.jsonl").read_text().splitlines()]
    assert [int(r["text"].split()[1]) for r in train] == sorted(int(r["text"].split()[1]) for r in train)
    assert not {r["text"] for r in train} & {r["text"] for r in pool} and all("label" not in r for r in pool)
