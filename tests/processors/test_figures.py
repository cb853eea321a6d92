"""Money, percentages and counts, normalised, each with its sentence."""

from __future__ import annotations

import pytest

from processors.figures import extract_figures


def figures(text: str):
    return [(f.kind, f.value, f.unit, f.text) for f in extract_figures(text, [(0, len(text))])]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Exports reached USD 964 million.", ("money", 964e6, "USD", "USD 964 million")),
        ("The plant will cost $1.5bn in total.", ("money", 1.5e9, "USD", "$1.5bn")),
        ("It came to 2 billion US dollars.", ("money", 2e9, "USD", "2 billion US dollars")),
        ("A fund of US$ 300 mln was set up.", ("money", 300e6, "USD", "US$ 300 mln")),
        ("Turnover hit RMB 27.9 billion.", ("money", 27.9e9, "CNY", "RMB 27.9 billion")),
        ("They invested 5 billion yuan.", ("money", 5e9, "CNY", "5 billion yuan")),
        ("A port worth CNY 800m is planned.", ("money", 800e6, "CNY", "CNY 800m")),
        ("The park costs about 20 billion roubles.", ("money", 20e9, "RUB", "20 billion roubles")),
        ("Grants of 1,250,000 rubles were paid.", ("money", 1.25e6, "RUB", "1,250,000 rubles")),
        ("Partners added €40 million.", ("money", 40e6, "EUR", "€40 million")),
    ],
)
def test_money_is_normalised_to_a_currency_code_and_a_plain_value(text, expected):
    assert figures(text) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("China accounts for 35% of the region's foreign trade.", ("percent", 35.0, "%")),
        ("Trade grew by 21% on the year.", ("percent", 21.0, "% change")),
        ("That is an increase of 38 percent.", ("percent", 38.0, "% change")),
        ("They saw a 17% increase.", ("percent", 17.0, "% change")),
        ("Exports fell 5 per cent.", ("percent", -5.0, "% change")),
        ("Supplies rose 6.5 times.", ("percent", 550.0, "% change")),
    ],
)
def test_percentages_tell_a_share_from_growth_and_decline(text, expected):
    assert [found[:3] for found in figures(text)] == [expected]


def test_a_number_of_times_without_growth_is_not_a_figure():
    assert figures("The delegation met three times and 2 times more often.") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Eleven cooperation agreements were signed.", ("count", 11.0, "agreements")),
        ("The sides signed 30 trade and economic agreements.", ("count", 30.0, "agreements")),
        ("Twenty-five memoranda of understanding followed.", ("count", 25.0, "memoranda")),
        ("Only one agreement was ready.", ("count", 1.0, "agreements")),
        ("Liaoning approved 182 investment projects in Russia.", ("count", 182.0, "projects")),
        ("A dozen contracts were inked.", ("count", 12.0, "contracts")),
    ],
)
def test_counts_of_agreements_and_projects(text, expected):
    assert [found[:3] for found in figures(text)] == [expected]


def test_years_and_unrelated_numbers_are_not_counts():
    assert figures("The 2019 agreements still apply, and one of the agreements expires.") == []


def test_each_figure_keeps_its_own_sentence():
    text = "Trade rose 10% last year.\nIn March the sides signed four agreements worth $2 billion."
    spans = [(0, 25), (26, len(text))]
    found = extract_figures(text, spans)
    assert [(f.kind, f.sentence) for f in found] == [
        ("percent", "Trade rose 10% last year."),
        ("count", "In March the sides signed four agreements worth $2 billion."),
        ("money", "In March the sides signed four agreements worth $2 billion."),
    ]


# --- Russian and Chinese -------------------------------------------------------------------------


def figures_in(language: str, text: str):
    return [(f.kind, f.value, f.unit) for f in extract_figures(text, [(0, len(text))], language)]


@pytest.mark.parametrize(("text", "expected"), [
    ("Инвестиции составят 4 млрд долларов.", [("money", 4e9, "USD")]),
    ("Оборот достиг 27,9 млрд юаней.", [("money", 27.9e9, "CNY")]),
    ("Выделено 1 250 000 рублей на проект.", [("money", 1.25e6, "RUB")]),
    ("Кредит в 350 миллионов рублей одобрен.", [("money", 350e6, "RUB")]),
    ("Товарооборот вырос на 38% за год.", [("percent", 38.0, "% change")]),
    ("Экспорт сократился на 3,2 процента.", [("percent", -3.2, "% change")]),
    ("Это на 17% больше, чем год назад.", [("percent", 17.0, "% change")]),
    ("Доля Китая — 35% оборота.", [("percent", 35.0, "%")]),
    ("Поставки картона выросли в 6,5 раза.", [("percent", 550.0, "% change")]),
    ("Стороны подписали 11 соглашений о сотрудничестве.", [("count", 11.0, "agreements")]),
    ("Подписаны одиннадцать соглашений и два меморандума.", [("count", 11.0, "agreements"), ("count", 2.0, "memoranda")]),
    ("Соглашение 2019 года продлено.", []),
])
def test_russian_figures(text, expected):
    assert figures_in("ru", text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("去年贸易额达到27.9亿元。", [("money", 27.9e8, "CNY")]),
    ("项目投资46亿美元。", [("money", 4.6e9, "USD")]),
    ("双边贸易额同比增长38%。", [("percent", 38.0, "% change")]),
    ("进口下降百分之十五。", [("percent", -15.0, "% change")]),
    ("双方签署11项合作协议。", [("count", 11.0, "agreements")]),
    ("签署了十一份合作文件。", [("count", 11.0, "documents")]),
    ("年运量120万吨。", [("count", 1.2e6, "tonnes")]),
])
def test_chinese_figures(text, expected):
    assert figures_in("zh", text) == expected
