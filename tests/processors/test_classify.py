"""The rules classifier on short texts of our own, and the cascade.

Most tests split sentences with a regular expression (``classify_text``) so they run
without the model; the ``slow`` ones go through the whole :class:`Analyzer`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.core.errors import ConfigError
from pipeline.core.messages import SECTORS, article_id
from processors.classify import Passage, load_classifier_config

# --- stories that are cooperation -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level", "russian", "chinese", "sector"),
    [
        ("Heilongjiang Province and Amur Oblast signed a memorandum on cross-border farming on Tuesday. "
         "Growers from both sides will share seed stocks.", "interregional", ["RU-AMU"], ["CN-HL"], "agriculture"),
        ("The mayors of Blagoveshchensk and Heihe agreed to build a cable car over the river.",
         "municipal", ["RU-AMU"], ["CN-HL"], "transport_logistics"),
        ("Rosatom and the China National Nuclear Corporation signed a contract for two more reactors.",
         "corporate", ["org:rosatom"], ["org:cnnc"], "energy"),
        ("Russia and China signed an agreement on the joint construction of a research station on the Moon.",
         "national", ["RU"], ["CN"], "science_space"),
        ("Moscow and Beijing signed a long-term contract for natural gas supplies.",
         "national", ["RU"], ["CN"], "energy"),
        ("The Moscow city government and the Beijing municipal authorities agreed to exchange metro experts.",
         "municipal", ["RU-MOW"], ["CN-BJ"], None),
        ("Exporters in Primorye now settle their contracts with Chinese buyers in yuan and roubles.",
         "interregional", ["RU-PRI"], ["CN"], "finance_payments"),
        # Universities take part by where they stand: Primorye's and Heilongjiang's.
        ("Far Eastern Federal University and Harbin Institute of Technology opened a joint school for engineering students.",
         "interregional", ["org:fefu"], ["org:hit"], "education"),
        ("Putin and Xi signed a joint statement on deepening the partnership in energy.",
         "national", ["org:ru-president"], ["org:cn-president"], "energy"),
        # The forum's host city is a venue, not a party.
        ("Russian and Chinese companies signed deals worth 2 billion dollars at a forum in Vladivostok.",
         "corporate", ["RU"], ["CN"], None),
        # The heads of state launch the work themselves; the plant's site is where, not who.
        ("By video link Putin and Xi launched the pouring of concrete for two new reactors at the Xudapu "
         "nuclear power plant.", "national", ["org:ru-president"], ["org:cn-president", "CN-LN"], "energy"),
    ],
)
def test_cooperation_stories_are_positive_with_their_parties_and_level(classify_text, text, level, russian, chinese, sector):
    result = classify_text(text)
    assert result.is_cooperation, result.reason
    assert 0.5 <= result.score <= 1
    assert (result.level, result.russian_parties, result.chinese_parties) == (level, russian, chinese)
    assert sector is None or sector in result.sectors
    assert set(result.sectors) <= set(SECTORS)
    assert result.evidence and result.classifier == "amur.rules.v1"


@pytest.mark.parametrize(
    ("title", "text", "level"),
    [
        # A ministry or state bank on each side acts for its state, whatever region the corridor crosses.
        ("Corridor deal with Beijing", "The Ministry for the Development of the Russian Far East and the National Development "
         "and Reform Commission agreed to build a corridor from Heilongjiang to the ports of Primorye.", "national"),
        # A region with the other side's ministry stays interregional.
        ("Border trade plan", "Heilongjiang Province and the Russian Far East Development Ministry signed a plan on border "
         "trade.", "interregional"),
        # Companies on both sides lead, even when the heads of state watch them sign.
        ("Gas contract signed", "Gazprom and CNPC signed a thirty-year gas supply contract. Putin and Xi attended the "
         "signing of the contract in Beijing.", "corporate"),
        # A head of state in the headline is its actor.
        ("Putin tours a Harbin campus", "Amur Oblast and Heilongjiang universities signed an agreement on joint degrees "
         "during the visit.", "national"),
        # A crossing of the border itself is the governments' work, whichever towns it joins.
        ("First train crosses the new rail bridge", "The first freight train crossed the bridge between Nizhneleninskoye "
         "in the Jewish Autonomous Oblast and Tongjiang in Heilongjiang under a joint agreement.", "national"),
    ],
)
def test_the_level_follows_who_leads_across_the_article(classify_text, title, text, level):
    result = classify_text(text, title=title)
    assert result.level == level, (result.reason, result.russian_parties, result.chinese_parties)


@pytest.mark.slow
@pytest.mark.parametrize(("title", "text"), [
    ("Поезд впервые прошёл по мосту через Амур", "Первый грузовой поезд прошёл по мосту между Нижнеленинским в "
     "Еврейской автономной области и Тунцзяном в провинции Хэйлунцзян в рамках совместного соглашения."),
    ("同江铁路大桥通车", "黑龙江省同江市与俄罗斯犹太自治州下列宁斯阔耶之间的铁路大桥正式通车,中俄双方签署合作协议。"),
])
def test_a_border_bridge_in_the_headline_is_national_in_russian_and_chinese(analyzer, title, text):
    result = analyzer.analyze_text(text, title=title).classification
    assert result.is_cooperation and result.level == "national", result.reason


def test_a_quote_gives_no_sector(classify_text):
    result = classify_text(
        "Amur Oblast and Heilongjiang opened the new road bridge between Blagoveshchensk and Heihe on Tuesday. "
        "Opening it, the governor quoted the cosmonaut Yuri Gagarin: 'Let's go!', and recalled his space flight. "
        "Trucks will cross the bridge around the clock.")
    assert result.is_cooperation and "transport_logistics" in result.sectors
    assert "science_space" not in result.sectors


def test_a_field_named_in_passing_beside_the_main_one_is_no_sector(analyzer):
    """The deal is about gas; the hotel and the museum of its celebration are not what the sides cooperate on."""
    result = analyzer.analyze_text(
        "Gazprom and CNPC signed a contract on Monday for gas from the Power of Siberia pipeline to reach Heilongjiang. "
        "The pipeline will carry natural gas and feed a new power plant and a gas chemical complex near Blagoveshchensk. "
        "Gazprom and CNPC will also build a second gas pipeline and an oil pipeline along the same route. "
        "The Russian and Chinese partners toasted the energy deal in a hotel after a tour of a local museum.",
        title="Gazprom and CNPC agree on gas for Heilongjiang",
    ).classification
    assert result.is_cooperation and result.sectors == ["energy"], result.sectors


@pytest.mark.slow
@pytest.mark.parametrize(("title", "text"), [
    ("", "Amur Oblast and Heilongjiang agreed to hold joint youth festivals and theatre tours every summer. "
         "The governor called the festivals a bridge of friendship between the two regions."),
    ("", "Амурская область и провинция Хэйлунцзян договорились проводить совместные молодёжные фестивали и гастроли театров. "
         "Губернатор назвал фестивали мостом дружбы между регионами."),
    ("", "黑龙江省与俄罗斯阿穆尔州签署协议,每年夏天共同举办青年文化节和剧团巡演。省长表示,文化节架起了两地友谊的桥梁。"),
])
def test_a_bridge_of_friendship_is_no_transport(analyzer, title, text):
    result = analyzer.analyze_text(text, title=title).classification
    assert result.is_cooperation and "culture_humanitarian" in result.sectors, result.sectors
    assert "transport_logistics" not in result.sectors, result.sectors


@pytest.mark.slow
def test_a_field_in_the_agency_s_name_of_a_dateline_is_no_sector(analyzer):
    """Sputnik's Chinese name is "the satellite news agency"; the deal is about timber."""
    result = analyzer.analyze_text(
        "俄罗斯卫星通讯社哈尔滨3月2日电 黑龙江省与俄罗斯哈巴罗夫斯克边疆区签署协议,共同建设木材加工园区,扩大木材和林产品合作。",
        title="黑龙江与哈巴罗夫斯克边疆区签署木材合作协议",
    ).classification
    assert result.is_cooperation and "forestry_timber" in result.sectors, result.sectors
    assert "science_space" not in result.sectors, result.sectors


@pytest.mark.slow
@pytest.mark.parametrize(("title", "text"), [
    ("Rosneft to supply more oil to Heilongjiang", "Rosneft signed an agreement with Heilongjiang to supply the province with "
     "two million tonnes of oil a year. The oil will be delivered by rail through Zabaikalsk and sold to refineries in Daqing."),
    ("Роснефть увеличит поставки нефти в Хэйлунцзян", "Роснефть и провинция Хэйлунцзян подписали соглашение: компания будет "
     "поставлять провинции два миллиона тонн нефти в год. Нефть пойдёт по железной дороге на продажу нефтеперерабатывающим заводам."),
    ("俄油向黑龙江增供石油", "俄罗斯石油公司与黑龙江省签署协议,每年向黑龙江增供原油两百万吨,原油经铁路运抵大庆并销售给炼油厂。"),
])
def test_a_sale_of_oil_between_the_parties_is_trade_as_well_as_energy(analyzer, title, text):
    result = analyzer.analyze_text(text, title=title).classification
    assert result.is_cooperation and {"energy", "trade"} <= set(result.sectors), result.sectors


@pytest.mark.slow
def test_days_of_a_province_with_business_meetings_are_culture_and_trade(analyzer):
    """A region's "days" abroad are a festival; business meetings between the regions are trade."""
    result = analyzer.analyze_text(
        "В Благовещенске открылись Дни провинции Хэйлунцзян. Губернатор Амурской области и губернатор провинции "
        "Хэйлунцзян отметили, что деловые встречи предпринимателей двух регионов помогают сотрудничеству.",
        title="В Амурской области открылись Дни провинции Хэйлунцзян",
    ).classification
    assert result.is_cooperation and {"culture_humanitarian", "trade"} <= set(result.sectors), result.sectors


@pytest.mark.slow
@pytest.mark.parametrize(("title", "text"), [
    ("A Chinese company will build a grain terminal in Primorye", "A Chinese company signed an agreement with the "
     "government of Primorsky Krai to build a grain terminal in the port of Nakhodka. The terminal will handle grain bound for Dalian."),
    ("Китайская компания построит зерновой терминал в Приморье", "Китайская компания подписала соглашение с правительством "
     "Приморского края и построит зерновой терминал в порту Находка. Через терминал пойдёт зерно в Далянь."),
    ("中国企业将在滨海边疆区建设粮食码头", "一家中国企业与俄罗斯滨海边疆区政府签署协议,将在纳霍德卡港建设粮食码头,经码头运往大连的粮食将增加。"),
])
def test_a_company_of_one_side_building_on_the_other_invests_there(analyzer, title, text):
    result = analyzer.analyze_text(text, title=title).classification
    assert result.is_cooperation and "investment" in result.sectors, result.sectors


def test_two_companies_building_together_invest_in_nothing_said(classify_text):
    """A company on each side is a joint project: invested in or not, the text must say so."""
    result = classify_text(
        "Gazprom and CNPC agreed to build a gas processing plant in Heilongjiang. "
        "The plant will treat gas from eastern Siberia before it reaches customers in the province.")
    assert result.is_cooperation and "investment" not in result.sectors, result.sectors


def test_two_regions_building_a_bridge_invest_in_nothing_said(classify_text):
    """Governments building their halves of a crossing are not a company's investment."""
    result = classify_text(
        "Amur Oblast and Heilongjiang agreed to build a road bridge between Blagoveshchensk and Heihe. "
        "Construction of the bridge will start next spring.")
    assert result.is_cooperation and "investment" not in result.sectors, result.sectors


def test_important_is_no_import(classify_text):
    result = classify_text(
        "Amur Oblast and Heilongjiang signed an agreement on a new grain terminal in Blagoveshchensk. "
        "More importantly, the terminal is an important step for the farmers of both regions.")
    assert result.is_cooperation and "trade" not in result.sectors, result.sectors


def test_the_field_of_a_sentence_stating_a_sum_counts(analyzer):
    """The evidence names the bridge; a later sentence says what the Chinese side invests in it."""
    result = analyzer.analyze_text(
        "Heilongjiang and the Jewish Autonomous Region started building a railway bridge across the Amur on Monday. "
        "The Chinese side will invest 2.6 billion yuan in its half of the crossing.",
        title="Work starts on a railway bridge across the Amur",
    )
    assert result.classification.is_cooperation
    assert {"transport_logistics", "investment"} <= set(result.classification.sectors), result.classification.sectors

def test_a_quarrel_over_old_place_names_is_no_cooperation(classify_text):
    result = classify_text(
        "Russian nationalists protested after Chinese maps showed Vladivostok under its old Chinese name Haishenwai. "
        "Bloggers in Primorye criticised the maps, and the Chinese side did not comment on the dispute.")
    assert not result.is_cooperation, result.reason


def test_a_first_shipment_after_a_ban_is_lifted_is_cooperation(classify_text):
    result = classify_text("Russia sent its first shipment of beef to China after Beijing lifted the ban on Russian meat.")
    assert result.is_cooperation, result.reason
    assert {"trade", "agriculture"} <= set(result.sectors)


def test_a_country_inside_a_multilateral_programme_s_name_is_no_party(classify_text):
    result = classify_text("Erenhot and a Chinese builder agreed a trade zone plan for the China-Mongolia-Russia economic corridor.")
    assert not result.is_cooperation and result.russian_parties == []


def test_each_field_of_a_list_of_agreed_areas_counts_and_a_name_is_not_a_topic(classify_text):
    listed = classify_text("Amur Oblast and Heilongjiang signed a cooperation agreement on Monday. "
                           "The sides agreed to work together in trade, tourism, education and culture.")
    assert {"trade", "tourism", "education", "culture_humanitarian"} <= set(listed.sectors)
    lender = classify_text("The Export-Import Bank of China and the Far East Development Corporation signed a loan "
                           "agreement for a new port in Primorye.")
    assert lender.is_cooperation and "trade" not in lender.sectors and "finance_payments" in lender.sectors


def test_a_pair_split_over_two_sentences_still_counts(classify_text):
    result = classify_text(
        "Officials of Jilin Province toured the port on Monday. "
        "They later signed three cooperation agreements with the Primorsky Krai administration."
    )
    assert result.is_cooperation, result.reason
    assert (result.russian_parties, result.chinese_parties) == (["RU-PRI"], ["CN-JL"])
    assert "toured the port on Monday. They later signed" in result.evidence[0]


def test_more_evidence_raises_the_score(classify_text):
    one = classify_text("Tongjiang and Nizhneleninskoye signed a bridge maintenance agreement.")
    two = classify_text(
        "Tongjiang and Nizhneleninskoye signed a bridge maintenance agreement. "
        "Freight across the bridge between Heilongjiang and the Jewish Autonomous Region doubled after the deal."
    )
    assert two.score > one.score and len(two.evidence) == 2


# --- hard negatives -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # Two countries in separate, unrelated sentences.
        "China's exports slowed in May, customs data showed. In Russia, the wheat harvest started early.",
        # A dispute.
        "Russian border guards detained a Chinese fishing boat near Heihe and fined its crew.",
        # Sanctions.
        "Washington imposed sanctions on three Chinese firms accused of supplying drone parts to Russian arms makers.",
        # Russia and China in a list of many countries.
        "Ministers from India, Brazil, Russia, China and South Africa discussed trade at the summit.",
        # Criticism of a joint project.
        "Chinese officials criticised the Russian contractor, saying work on the bridge had stalled.",
    ],
)
def test_disputes_lists_and_unrelated_mentions_are_negative(classify_text, text):
    result = classify_text(text)
    assert not result.is_cooperation, result.reason
    assert result.score < 0.5
    assert result.reason.startswith("not cooperation")


def test_dispute_reason_names_the_dispute_cues(classify_text):
    result = classify_text("China banned imports of Russian pork from Amur Oblast and suspended two contracts.")
    assert "dispute cues" in result.reason and "banned" in result.reason


# --- the cheap pass -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "text", "reason"),
    [
        ("", "The Tomsk Oblast government and Gazprom signed an agreement on gas for villages.", "names no Chinese party"),
        ("", "Khabarovsk Krai signed a tourism agreement with the Japanese island of Hokkaido.", "names no Chinese party"),
        ("", "Shanghai hosted a trade fair for furniture makers.", "names no Russian party"),
        ("", "Russian warships sailed through the South China Sea after joint talks.", "names no Chinese party"),
        ("Rain in Lisbon", "Football fans crowded the square after the match.", "names neither"),
        ("", "Russian swimmers beat Chinese rivals at the championships.", "no cooperation cue"),
        ("", "Russia signed a deal. " + "Filler words keep going here. " * 40 + "China signed a deal.", "never within"),
    ],
)
def test_the_cheap_pass_turns_away_articles_with_the_reason(gazetteer, classifier, title, text, reason):
    verdict = classifier.screen(Passage.of(title, gazetteer), Passage.of(text, gazetteer))
    assert verdict is not None and reason in verdict
    rejected = classifier.reject(verdict)
    assert (rejected.is_cooperation, rejected.score) == (False, 0.0) and rejected.reason.startswith("cheap pass: ")


def test_the_cheap_pass_lets_a_title_pair_through(gazetteer, classifier):
    title = Passage.of("Amur Oblast signs deal with Heilongjiang", gazetteer)
    assert classifier.screen(title, Passage.of("Details follow.", gazetteer)) is None


# --- the configuration ----------------------------------------------------------------


def test_the_shipped_config_has_exactly_the_sector_taxonomy(classifier_config_path):
    config = load_classifier_config(classifier_config_path)
    assert list(config.sectors.model_dump()) == list(SECTORS)
    assert 0 < config.scoring.threshold < 1


def broken_config(shipped: Path, tmp_path: Path, change) -> list:
    data = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "classifier.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_classifier_config(path)
    return [(p.key, p.message) for p in caught.value.problems]


def test_an_unknown_or_missing_sector_is_refused_with_its_key(classifier_config_path, tmp_path):
    def rename(data):
        data["sectors"]["shipping"] = data["sectors"].pop("transport_logistics")

    keys = [key for key, _ in broken_config(classifier_config_path, tmp_path, rename)]
    assert "sectors.shipping" in keys and "sectors.transport_logistics" in keys


def test_a_cue_in_two_lists_is_refused(classifier_config_path, tmp_path):
    problems = broken_config(classifier_config_path, tmp_path, lambda data: data["cues"]["weak"].append("signed"))
    assert ("cues.weak", "'signed' is also listed under cues.strong") in problems


# --- the whole cascade, with the model -------------------------------------------------


@pytest.mark.slow
def test_analyze_sends_only_candidates_to_the_model(analyzer, monkeypatch):
    seen: list[str] = []
    pipe = analyzer.nlp.pipe

    def recording_pipe(texts, **options):
        texts = list(texts)
        seen.extend(texts)
        return pipe(texts, **options)

    monkeypatch.setattr(analyzer.nlp, "pipe", recording_pipe)
    story = "Governor Vasily Orlov of Amur Oblast and Heilongjiang officials signed eleven agreements worth $2 billion in Harbin."
    other = "The museum in Lisbon opened a show of modern sculpture on Tuesday."
    first, second = analyzer.analyze([_article(story, "a"), _article(other, "b")])
    assert seen == [story]
    assert first.classification.is_cooperation and first.classification.level == "interregional"
    labels = {(e.label, e.canonical_id) for e in first.entities}
    # The model adds what the gazetteer does not know (the amount); the gazetteer links the places.
    assert {("MONEY", None), ("federal_subject", "RU-AMU"), ("province", "CN-HL"), ("city", "city:cn:harbin")} <= labels
    assert {(f.kind, f.unit) for f in first.figures} == {("count", "agreements"), ("money", "USD")}
    assert not second.classification.is_cooperation
    assert second.classification.reason.startswith("cheap pass:") and second.entities == [] and second.figures == []


@pytest.mark.slow
def test_analyze_text_builds_a_cli_article(analyzer):
    result = analyzer.analyze_text("Gazprom and CNPC signed a supply contract.", title="Gas deal")
    assert result.article.source == "cli" and result.article.url.startswith("text:")
    assert result.id == article_id(result.article.url)
    assert result.classification.level == "corporate"


def _article(text: str, name: str):
    from processors.analyze import synthetic_article

    return synthetic_article(text, url=f"https://example.invalid/{name}")




# --- what the evidence shows a reader -----------------------------------------------------


def test_evidence_is_distinct_body_sentences_without_the_title_or_a_dateline(classify_text):
    title = "Amur Oblast and Heilongjiang sign a ferry agreement"
    text = (f"{title}. HARBIN, May 5 /TASS/ - Amur Oblast and Heilongjiang signed an agreement on a year-round ferry. "
            "Amur Oblast and Heilongjiang signed an agreement on a year-round ferry. "
            "/TASS/. The Amur Oblast government and Heilongjiang province agreed to share the ferry's costs.")
    result = classify_text(text, title=title)
    assert result.is_cooperation
    assert sorted(result.evidence) == [
        "Amur Oblast and Heilongjiang signed an agreement on a year-round ferry.",
        "The Amur Oblast government and Heilongjiang province agreed to share the ferry's costs.",
    ]


def test_a_city_without_its_own_government_speaks_for_its_region(classify_text):
    """A bridge between two border towns is the regions' cooperation; their mayors' pact is the towns'."""
    regional = classify_text("The bridge between Blagoveshchensk and Heihe will open to trucks, the two sides agreed.")
    municipal = classify_text("The mayors of Blagoveshchensk and Heihe agreed to open the bridge to trucks.")
    assert (regional.level, municipal.level) == ("interregional", "municipal")
