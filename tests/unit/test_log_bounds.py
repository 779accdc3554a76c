"""Fair shares of PREDICTION_LOG_MAX_MB (issue 48): water-filling over what each model uses."""
from registry.monitoring.log_bounds import allotments, row_bytes


def test_a_model_under_an_equal_share_keeps_all_it_has_and_the_rest_goes_to_the_others():
    assert allotments({"quiet": 10, "hot": 500, "warm": 300}, 300, {}) == {"quiet": 10, "hot": 145, "warm": 145}


def test_within_the_bound_nobody_is_cut():
    assert allotments({"a": 10, "b": 20}, 100, {}) == {"a": 10, "b": 20}


def test_a_models_own_cap_lowers_its_share_and_leaves_the_rest_to_others():
    assert allotments({"capped": 500, "hot": 500}, 300, {"capped": 50}) == {"capped": 50, "hot": 250}


def test_a_row_counts_its_text_and_the_fixed_columns():
    assert row_bytes(inputs="[[1]]", outputs=None, request_id="r-1", alias="production", route=None) == 64 + 5 + 3 + 10
