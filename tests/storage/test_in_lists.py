from hypothesis import given
from hypothesis import strategies as st

from dd0c_alert.storage.in_lists import padded


@given(st.lists(st.text(max_size=3), max_size=600))
def test_a_padded_list_has_the_same_values_and_a_power_of_two_length(values: list[str]) -> None:
    found = padded(values)
    assert set(found) == set(values)
    assert found[: len(values)] == values
    assert len(found) < 2 * len(values) or len(values) <= 1
    assert len(found) & (len(found) - 1) == 0 or not found


def test_a_batch_sizes_lists_come_in_ten_lengths_up_to_the_query_chunk() -> None:
    assert {len(padded(range(n))) for n in range(1, 501)} == {2**k for k in range(10)}
