"""Russian sentences to speak: everyday words in Cyrillic, with case and gender agreement.

:func:`general_sentence` makes one short Russian sentence for
:func:`data_prep.sentences.sentence_corpus`. About 630 word forms combine through grammatical
templates: a past-tense verb agrees with its subject's gender, a direct object and its adjective
take the accusative, a counted noun the form its number asks for (``3 книги``, ``5 книг``).
Some sentences carry digits: counts, prices (``за 350 рублей``), percentages written as words
(``на 20 процентов``), dates (``15 марта``) and clock times (``в 19:30``).

The language the demo's capped test tokenizer splits into many pieces (Cyrillic letters are
two bytes, and few Russian merges survive the cap), so the dataset card's fertility check has
something real to flag. Chosen so that espeak-ng (voice ``ru``) reads each token as written:
no decimals (``3,5`` is read "три и пятидесятых"), no unit symbols (``кг`` is read letter by
letter), no ``%`` sign (read "процент" whatever the number), no years (read as cardinals where
Russian says an ordinal), counts never ending in 1 (``21 книгу`` is read "двадцать один") and
feminine ones never in 2 ("два", not "две"). Dates are read as cardinals ("пятнадцать марта",
where Russian says "пятнадцатого"): the written form is right, the audio a simplification.
"""

from __future__ import annotations

import random


def _lines(text: str) -> tuple[str, ...]:
    """The non-empty lines of a block of text, stripped."""
    return tuple(line.strip() for line in text.strip().splitlines())


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Nouns of things: nominative, accusative, genitive singular, genitive plural, gender.
_THINGS = tuple(
    tuple(line.split())
    for line in _lines(
        """
    книга книгу книги книг f
    лампа лампу лампы ламп f
    коробка коробку коробки коробок f
    бутылка бутылку бутылки бутылок f
    чашка чашку чашки чашек f
    ложка ложку ложки ложек f
    тарелка тарелку тарелки тарелок f
    сумка сумку сумки сумок f
    куртка куртку куртки курток f
    рубашка рубашку рубашки рубашек f
    шапка шапку шапки шапок f
    корзина корзину корзины корзин f
    картина картину картины картин f
    газета газету газеты газет f
    карта карту карты карт f
    ваза вазу вазы ваз f
    игрушка игрушку игрушки игрушек f
    кукла куклу куклы кукол f
    гитара гитару гитары гитар f
    свеча свечу свечи свечей f
    подушка подушку подушки подушек f
    тетрадь тетрадь тетради тетрадей f
    кастрюля кастрюлю кастрюли кастрюль f
    полка полку полки полок f
    щётка щётку щётки щёток f
    фотография фотографию фотографии фотографий f
    стол стол стола столов m
    стул стул стула стульев m
    шкаф шкаф шкафа шкафов m
    ящик ящик ящика ящиков m
    телефон телефон телефона телефонов m
    компьютер компьютер компьютера компьютеров m
    чемодан чемодан чемодана чемоданов m
    зонт зонт зонта зонтов m
    ключ ключ ключа ключей m
    нож нож ножа ножей m
    стакан стакан стакана стаканов m
    чайник чайник чайника чайников m
    портфель портфель портфеля портфелей m
    подарок подарок подарка подарков m
    пакет пакет пакета пакетов m
    журнал журнал журнала журналов m
    билет билет билета билетов m
    мяч мяч мяча мячей m
    велосипед велосипед велосипеда велосипедов m
    фонарь фонарь фонаря фонарей m
    молоток молоток молотка молотков m
    ковёр ковёр ковра ковров m
    кувшин кувшин кувшина кувшинов m
    конверт конверт конверта конвертов m
    платок платок платка платков m
    торт торт торта тортов m
    карандаш карандаш карандаша карандашей m
    окно окно окна окон n
    зеркало зеркало зеркала зеркал n
    кресло кресло кресла кресел n
    ведро ведро ведра вёдер n
    блюдо блюдо блюда блюд n
    письмо письмо письма писем n
    одеяло одеяло одеяла одеял n
    кольцо кольцо кольца колец n
    полотенце полотенце полотенца полотенец n
    """
    )
)

# Adjectives, masculine nominative; the other forms by :func:`_adjective`.
_ADJECTIVES = _words(
    """
    красный маленький старый новый тяжёлый чистый белый чёрный жёлтый дорогой дешёвый
    красивый длинный короткий круглый пустой полный сломанный странный грязный лёгкий узкий
    широкий мокрый сухой зелёный большой синий серый огромный коричневый хрупкий мягкий
    тёплый холодный деревянный стеклянный железный старинный хороший свежий яркий тёмный
    светлый удобный простой модный
    """
)

# People: phrase and gender (the past tense agrees with it).
_PEOPLE = tuple(
    (" ".join(line.split()[:-1]), line.split()[-1])
    for line in _lines(
        """
    мой брат m
    моя сестра f
    учитель m
    учительница f
    наш сосед m
    наша соседка f
    водитель m
    старик m
    бабушка f
    дедушка m
    врач m
    медсестра f
    почтальон m
    повар m
    мама f
    папа m
    студент m
    студентка f
    художник m
    художница f
    фермер m
    продавщица f
    мальчик m
    девочка f
    мой друг m
    моя подруга f
    тётя f
    дядя m
    директор m
    официантка f
    рыбак m
    музыкант m
    певица f
    инженер m
    """
    )
)
# Verbs taking a direct object: past masculine, past feminine, future "мы", polite imperative.
_VERBS = tuple(
    tuple(line.split())
    for line in _lines(
        """
    нашёл нашла найдём найдите
    открыл открыла откроем откройте
    купил купила купим купите
    продал продала продадим продайте
    покрасил покрасила покрасим покрасьте
    принёс принесла принесём принесите
    почистил почистила почистим почистите
    передвинул передвинула передвинем передвиньте
    спрятал спрятала спрячем спрячьте
    починил починила починим почините
    помыл помыла помоем помойте
    закрыл закрыла закроем закройте
    отправил отправила отправим отправьте
    взял взяла возьмём возьмите
    оставил оставила оставим оставьте
    завернул завернула завернём заверните
    поставил поставила поставим поставьте
    проверил проверила проверим проверьте
    подарил подарила подарим подарите
    нарисовал нарисовала нарисуем нарисуйте
    заказал заказала закажем закажите
    упаковал упаковала упакуем упакуйте
    """
    )
)
_TRADE = (("купил", "купила"), ("продал", "продала"), ("заказал", "заказала"))
_PLACES = _lines(
    """
    в парке
    на вокзале
    в школе
    на рынке
    у реки
    в саду
    в порту
    в больнице
    в музее
    в магазине
    в библиотеке
    на кухне
    в деревне
    в лесу
    в гараже
    в подвале
    в аптеке
    в аэропорту
    в ресторане
    в театре
    на мосту
    на площади
    на почте
    на даче
    в офисе
    на пляже
    возле дома
    около школы
    за домом
    под столом
    на столе
    в шкафу
    на полке
    в коридоре
    на балконе
    """
)
_TIMES = _lines(
    """
    сегодня
    завтра
    вечером
    утром
    послезавтра
    на этой неделе
    в понедельник
    во вторник
    в среду
    в четверг
    в пятницу
    в субботу
    в воскресенье
    через час
    днём
    позже
    """
)
_PAST_TIMES = ("вчера", "утром", "вечером", "на прошлой неделе", "в понедельник", "позавчера")
_MONTHS = _words(
    "января февраля марта апреля мая июня июля августа сентября октября ноября декабря"
)
_EVENTS = (
    "собрание",
    "концерт",
    "свадьба",
    "экзамен",
    "праздник",
    "матч",
    "ужин",
    "поездка",
    "экскурсия",
    "ярмарка",
)
_MEASURED = ("цены", "продажи", "зарплаты", "расходы", "доходы", "налоги", "тарифы", "пенсии")
_CHANGES = ("выросли", "снизились", "упали", "поднялись")
_WHEN_CHANGED = ("в этом году", "в марте", "за год", "летом", "зимой", "за месяц")
_ORDINALS = ("первый", "второй", "третий", "четвёртый", "пятый", "последний")
_SMALL_NUMBERS = ("два", "три", "четыре")  # spelled, with the genitive singular


def _adjective(masculine: str, form: str) -> str:
    """``form``: ``m``/``f``/``n`` nominative, or ``f_acc``; hard (красный), soft (синий) and
    after к, г, х, ж, ш, ч, щ (маленький, хороший) stems."""
    if form == "m":
        return masculine
    stem = masculine[:-2]
    soft = masculine.endswith("ий") and stem[-1] not in "кгхжшчщ"
    hushing = masculine.endswith("ий") and stem[-1] in "жшчщ"
    if form == "f":
        return stem + ("яя" if soft else "ая")
    if form == "f_acc":
        return stem + ("юю" if soft else "ую")
    return stem + ("ее" if soft or hushing else "ое")


def _count_form(n: int, noun: tuple[str, ...]) -> str:
    """The form of ``noun`` after the number ``n`` (nominative/accusative): 1, 21 → singular;
    2-4, 22-24 → genitive singular; 5-20, 25-30 … → genitive plural."""
    if n % 10 == 1 and n % 100 != 11:
        return noun[1]
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return noun[2]
    return noun[3]


def _rubles(n: int) -> str:
    return _count_form(n, ("рубль", "рубль", "рубля", "рублей"))


def _percent(n: int) -> str:
    return _count_form(n, ("процент", "процент", "процента", "процентов"))


def _count(rng: random.Random, gender: str) -> int:
    """A count for a noun of ``gender``: never ending in 1, feminine ones never in 2 (espeak-ng
    reads both in the masculine)."""
    while True:
        n = rng.randint(2, 99)
        if n % 10 == 1 and n != 11:
            continue
        if gender == "f" and n % 10 == 2 and n != 12:
            continue
        return n


def _clock(rng: random.Random) -> str:
    return f"{rng.randint(7, 21)}:{rng.choice(('10', '15', '20', '30', '45'))}"


def general_sentence(rng: random.Random) -> str:
    """One Russian sentence of 4 to 12 words, lowercase first letter, ending in ``.`` or ``?``."""
    c = rng.choice

    def obj(with_adjective: bool = True) -> str:
        """A direct object in the accusative, with an agreeing adjective."""
        noun = c(_THINGS)
        if not with_adjective:
            return noun[1]
        g = noun[4]
        return f"{_adjective(c(_ADJECTIVES), 'f_acc' if g == 'f' else g)} {noun[1]}"

    def subject_noun() -> str:
        noun = c(_THINGS)
        return f"{_adjective(c(_ADJECTIVES), noun[4])} {noun[0]}"

    def predicate() -> str:
        noun = c(_THINGS)
        return f"{noun[0]} {_adjective(c(_ADJECTIVES), noun[4])}"

    def past() -> str:
        """Subject and a past-tense verb agreeing with it."""
        person, gender = c(_PEOPLE)
        return f"{person} {c(_VERBS)[gender == 'f']}"

    def counted() -> str:
        noun = c(_THINGS)
        if rng.random() < 0.2 and noun[4] != "f":
            return f"{c(_SMALL_NUMBERS)} {noun[2]}"
        n = _count(rng, noun[4])
        return f"{n} {_count_form(n, noun)}"

    def arrived() -> str:
        person, gender = c(_PEOPLE)
        verb = "приехала" if gender == "f" else "приехал"
        return f"{person} {verb} {rng.randint(1, 28)} {c(_MONTHS)}."

    def price() -> str:
        person, gender = c(_PEOPLE)
        verb = c(_TRADE)[gender == "f"]
        n = rng.choice((rng.randint(2, 99) * 10, rng.randint(2, 99)))
        return f"{person} {verb} {obj()} за {n} {_rubles(n)}."

    def percentage() -> str:
        n = rng.randint(2, 40)
        return f"{c(_MEASURED)} {c(_CHANGES)} на {n} {_percent(n)} {c(_WHEN_CHANGED)}."

    templates = (
        lambda: f"{past()} {obj()}.",
        lambda: f"{past()} {obj(False)} {c(_PLACES)}.",
        lambda: f"мы {c(_VERBS)[2]} {obj()} {c(_TIMES)}.",
        lambda: f"пожалуйста, {c(_VERBS)[3]} {obj()} {c(_TIMES)}.",
        lambda: f"{subject_noun()} всё ещё {c(_PLACES)}?",
        lambda: f"{predicate()}, а {predicate()}.",
        lambda: f"{past()} {counted()} {c(_PAST_TIMES)}.",
        price,
        arrived,
        lambda: f"{c(_EVENTS)} начнётся {rng.randint(1, 28)} {c(_MONTHS)} в {_clock(rng)}.",
        percentage,
        lambda: f"{past()} {obj()} в {c(_ORDINALS)} раз.",
    )
    return c(templates)()
