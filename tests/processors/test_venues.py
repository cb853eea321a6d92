"""Places named as venues or as a foreign mission's seat are not parties."""

from __future__ import annotations

import pytest

from processors.venues import is_venue, names_city_body


def _at(text: str, place: str) -> bool:
    start = text.index(place)
    return is_venue(text, start, start + len(place))


@pytest.mark.parametrize(("text", "place"), [
    ("Gazprom and CNPC signed the contract at a ceremony in Shanghai.", "Shanghai"),
    ("As part of the Eastern Economic Forum in Vladivostok, the sides signed a loan agreement.", "Vladivostok"),
    ("The Chinese Consulate General in Khabarovsk reported the talks.", "Khabarovsk"),
    ("Встреча состоялась в Благовещенске, сообщает правительство области.", "Благовещенске"),
    ("Об этом сообщает Генконсульство КНР в Хабаровске.", "Хабаровске"),
    ("中国驻符拉迪沃斯托克总领事馆6月6日消息。", "符拉迪沃斯托克"),
    ("第五届中俄博览会在哈尔滨举行。", "哈尔滨"),
])
def test_venues_and_missions_seats(text, place):
    assert _at(text, place)


@pytest.mark.parametrize(("text", "place"), [
    # The project's site, however near a signing: the place takes part.
    ("Rosneft signed a deal to build a refinery in Tianjin.", "Tianjin"),
    ("Khabarovsk Krai and Heilongjiang signed an accord on river ports.", "Khabarovsk"),
    ("В Тульской области открылся завод китайской компании.", "Тульской области"),
    ("The forum closed. Harbin will host the expo's next trade fair.", "Harbin"),
    ("黑龙江省与阿穆尔州签署合作协议。", "黑龙江省"),
])
def test_parties_and_sites_are_no_venues(text, place):
    assert not _at(text, place)


@pytest.mark.parametrize(("text", "place", "city"), [
    ("The pandas settled into the Moscow Zoo.", "Moscow", True),
    ("Moscow's Synergy University opened a campus in Shantou.", "Moscow", True),
    ("Среди гостей были обладатели грантов мэра Москвы.", "Москвы", True),
    ("熊猫落户莫斯科动物园。", "莫斯科", True),
    ("Moscow and Beijing signed a statement.", "Moscow", False),
    ("Putin met Xi in Moscow in March.", "Moscow", False),
])
def test_a_capital_named_with_an_institution_of_its_own_is_its_city(text, place, city):
    start = text.index(place)
    assert names_city_body(text, start, start + len(place)) is city


def test_every_studio_of_a_video_link_is_a_venue():
    text = "The bridge was opened by video link from studios in Moscow, Vladivostok and Beijing."
    assert all(_at(text, place) for place in ("Moscow", "Vladivostok", "Beijing"))
    russian = "Мост открыли по видеосвязи из студий в Москве, Владивостоке и Пекине."
    assert all(_at(russian, place) for place in ("Москве", "Владивостоке", "Пекине"))
