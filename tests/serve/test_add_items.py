"""``Recommender.add_items``: content towers embed unseen items exactly like catalogue items;
ID models refuse."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recadapt.errors import RecAdaptError
from recadapt.models.content import CachedStates, LiveStates
from recadapt.models.frozen import FrozenBackbone, FrozenConfig
from recadapt.models.idrec import SASRec, SASRecConfig
from recadapt.models.iisan import IISAN, IISANConfig


@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.parametrize("model_class, config, encoders", [
    (IISAN, IISANConfig(hidden_size=16, adapter_size=8), 2),
    (FrozenBackbone, FrozenConfig(hidden_size=16), 1),
])
def test_new_items_get_the_vector_of_the_same_content(content_models, fake_encoder, cached,
                                                       model_class, config, encoders) -> None:
    encoders = [fake_encoder(4, 8, "a"), fake_encoder(4, 8, "b", seed=1)][:encoders]
    contents = list(content_models.CONTENTS)
    layers = model_class.select_layers(config, [e.info for e in encoders])
    sources = [CachedStates(e.encode(contents, chosen), chosen, e) if cached
               else LiveStates(e, contents, chosen) for e, chosen in zip(encoders, layers,
                                                                          strict=True)]
    model = model_class(config, len(contents), 4, nn.ModuleList(sources),
                        [e.info for e in encoders]).eval()
    with torch.no_grad():
        before = model.item_embeddings().clone()
    twins = [[contents[2], contents[6]] for _ in encoders]  # items 3 and 7 again
    vectors = model.add_items(twins)
    torch.testing.assert_close(vectors, before[[3, 7]])
    assert model.num_items == len(contents) + 2
    with torch.no_grad():  # the new items are first-class: in the table and in histories
        table = model.item_embeddings()
        torch.testing.assert_close(table[-2:], vectors)
        history = {"history": torch.tensor([[0, 1, 14]]), "user": torch.zeros(1).long()}
        twin_history = {"history": torch.tensor([[0, 1, 7]]), "user": torch.zeros(1).long()}
        torch.testing.assert_close(model.user_embeddings(history),
                                   model.user_embeddings(twin_history))
    with pytest.raises(RecAdaptError, match="contents for each"):
        model.add_items([["x"]] * (len(encoders) + 1))


def test_id_models_have_no_content_tower() -> None:
    model = SASRec(SASRecConfig(hidden_size=8), 5, 4)
    with pytest.raises(RecAdaptError, match="'sasrec' has no content tower"):
        model.add_items([])


def test_cached_states_without_their_encoder_cannot_grow(content_models, fake_encoder) -> None:
    encoder = fake_encoder(4, 8, "a")
    states = CachedStates(encoder.encode(list(content_models.CONTENTS), [4]), [4])
    with pytest.raises(RecAdaptError, match="without their encoder"):
        states.append(["new"])
