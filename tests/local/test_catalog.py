"""The demo task's data and metric: generated, deterministic, disjoint splits, exact catalog entries."""

import dspy

from btq.worker.lm.local.tasks.catalog import BODIES, MIDDLE, TEMPLATES, author_splits, catalog_exact


def test_splits_are_deterministic_disjoint_and_sized() -> None:
    splits = author_splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "val": 30, "test": 40}
    assert [e.toDict() for e in splits["test"]] == [e.toDict() for e in author_splits()["test"]]
    sentences = [e.sentence for split in splits.values() for e in split]
    assert len(set(sentences)) == len(sentences)
    assert author_splits(seed=1)["train"][0].sentence != splits["train"][0].sentence
    assert {k: len(v) for k, v in author_splits(sizes=(5, 6, 7)).items()} == {"train": 5, "val": 6, "test": 7}


def _is_organization(entry: str) -> bool:
    return any(entry.endswith(body) for body in BODIES)


def test_people_are_listed_surname_first_and_organizations_as_written() -> None:
    for example in author_splits()["train"] + author_splits()["test"]:
        entry = example.catalog_name
        if _is_organization(entry):
            assert entry in example.sentence and "," not in entry
            continue
        surname, given = entry.split(", ")
        assert f"{given} {surname}" in example.sentence
        assert len(given.split()) in (1, 2) and (len(given.split()) == 1 or given.split()[1] in MIDDLE)
        assert example.inputs().keys() == ["sentence"]


def test_every_kind_of_author_and_sentence_shape_is_in_the_training_split() -> None:
    train = author_splits()["train"]
    entries = [e.catalog_name for e in train]
    assert any(_is_organization(x) for x in entries)
    assert any(not _is_organization(x) and len(x.split(", ")[1].split()) == 2 for x in entries)
    assert any(not _is_organization(x) and len(x.split(", ")[1].split()) == 1 for x in entries)
    for template in TEMPLATES:
        words = max(template.replace("{", "}").split("}")[::2], key=len).strip(" ,.()")
        assert any(words in example.sentence for example in train), template


def test_metric_wants_exactly_the_entry() -> None:
    example = dspy.Example(sentence="Tomas Kai Dubois wrote this book in 1987.", catalog_name="Dubois, Tomas Kai")
    assert catalog_exact(example, dspy.Prediction(catalog_name=" Dubois, Tomas Kai\n"))
    assert not catalog_exact(example, dspy.Prediction(catalog_name="Tomas Kai Dubois"))
    assert not catalog_exact(example, dspy.Prediction(catalog_name="Dubois, Tomas"))
    assert not catalog_exact(example, dspy.Prediction())
