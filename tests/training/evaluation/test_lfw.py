from facever.training.data import split_people
from facever.training.evaluation.lfw import LFW, parse_pairs


def test_parse_pairs_reads_matched_and_mismatched_lines_per_fold():
    text = "2\t1\nAlice\t1\t2\nAlice\t3\tBob\t1\nCarol\t2\t4\nDan\t1\tErin\t12\n"
    pairs = parse_pairs(text)
    assert [(p.fold, p.same) for p in pairs] == [(1, True), (1, False), (2, True), (2, False)]
    assert pairs[0].first == "Alice/Alice_0001" and pairs[0].second == "Alice/Alice_0002"
    assert pairs[3].second == "Erin/Erin_0012"


def test_official_pairs_have_ten_disjoint_folds(lfw_root):
    lfw = LFW(lfw_root)
    pairs = lfw.pairs()
    assert len(pairs) == 6000 and sum(p.same for p in pairs) == 3000
    folds = lfw.fold_identities()
    assert sorted(folds) == list(range(1, 11))
    for a in folds:
        for b in folds:
            assert a == b or not folds[a] & folds[b]


def test_training_split_excludes_test_and_calibration_people(lfw_root):
    lfw = LFW(lfw_root)
    split = split_people(lfw, test_folds=[10], calibration_folds=[9])
    folds = lfw.fold_identities()
    assert not set(split.train) & (folds[9] | folds[10])
    assert set(split.calibration) == folds[9] and set(split.test) == folds[10]
    assert len(split.train) + len(split.calibration) + len(split.test) == len(lfw.identities())
