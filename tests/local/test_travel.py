"""The demo task's data and metric: generated, deterministic, disjoint splits, exact destination names."""

import dspy

from btq.worker.lm.local.tasks.travel import CITIES, TEMPLATES, destination_exact, trip_splits


def test_splits_are_deterministic_disjoint_and_sized() -> None:
    splits = trip_splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "val": 40, "test": 40}
    assert [e.toDict() for e in splits["test"]] == [e.toDict() for e in trip_splits()["test"]]
    sentences = [e.sentence for split in splits.values() for e in split]
    assert len(set(sentences)) == len(sentences)
    assert trip_splits(seed=1)["train"][0].sentence != splits["train"][0].sentence


def test_each_sentence_names_three_cities_and_the_answer_is_one_of_them() -> None:
    for example in trip_splits()["train"]:
        named = [city for city in CITIES if city in example.sentence]
        assert len(named) == 3 and example.destination in named
        assert example.inputs().keys() == ["sentence"]


def test_every_sentence_shape_appears_in_the_training_split() -> None:
    train = trip_splits()["train"]
    # Each template's fixed words (e.g. "took the night train to") show up in some training sentence.
    for template in TEMPLATES:
        words = max(template.replace("{", "}").split("}")[::2], key=len).strip(" ,.;:'s")
        assert any(words in example.sentence for example in train), template


def test_metric_wants_exactly_the_destination() -> None:
    example = dspy.Example(sentence="Born in Accra, Ivan flew to Riga after a conference in Hanoi.", destination="Riga")
    assert destination_exact(example, dspy.Prediction(destination=" Riga\n"))
    assert not destination_exact(example, dspy.Prediction(destination="Riga, Latvia"))
    assert not destination_exact(example, dspy.Prediction(destination="Hanoi"))
    assert not destination_exact(example, dspy.Prediction())
