"""Spanish sentences to speak: everyday words with gender and number agreement, and digits.

:func:`general_sentence` makes one short Spanish sentence (Spain's spelling) for
:func:`data_prep.sentences.sentence_corpus`. About 600 word forms combine through grammatical
templates (article, noun and adjective agree; ``de el``/``a el`` contract), so held-out
sentences are new combinations. Some sentences carry numbers as digits, as Spanish writes
them: counts, prices (``2.500 euros``, ``2,50 euros``), decimals with a comma (``3,5 kg``),
percentages (``15%``), dates (``15 de marzo``), clock times (``7:30``) and years, so the
transcript's spoken form (:mod:`data_prep.spoken_numbers`) is exercised.

Chosen so that espeak-ng (voice ``es``) reads every token as written: counts avoid numbers
ending in 1 (``21 cajas`` is read "veintiuno", not "veintiuna"), ordinals are spelled out
(espeak-ng reads ``2.º`` as "dos punto o"), and the only unit symbol is ``kg`` (``km`` is read
letter by letter).
"""

from __future__ import annotations

import random

_ACCENTED = str.maketrans("áéíóú", "aeiou")


def _plural(word: str) -> str:
    """Regular Spanish plural: ``libro`` → ``libros``, ``reloj`` → ``relojes``, ``lápiz`` →
    ``lápices``, ``sillón`` → ``sillones`` (the stress mark goes: the stress moves)."""
    if word[-1] in "aeiouáéó":
        return word + "s"
    if word.endswith("z"):
        return word[:-1] + "ces"
    if word[-2:] in ("ón", "én", "ín", "án"):
        return word[:-2] + word[-2].translate(_ACCENTED) + word[-1] + "es"
    return word + "es"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _phrases(text: str) -> tuple[str, ...]:
    """Comma-separated phrases of a block of text."""
    return tuple(" ".join(p.split()) for p in text.split(","))


# Nouns of things, by gender; plurals by :func:`_plural`.
_MASCULINE = _words(
    """
    libro cuaderno sombrero reloj espejo vaso plato cuchillo tenedor abrigo zapato bolso
    sillón armario cuadro regalo pastel paquete periódico mapa billete teléfono ordenador
    juguete jarrón pañuelo martillo cajón cesto cubo sobre lápiz cuenco guante anillo collar
    baúl coche barco
    """
)
_FEMININE = _words(
    """
    caja silla mesa carta ventana puerta lámpara botella chaqueta cesta taza cuchara llave
    maleta bicicleta cámara camisa falda manta almohada cortina flor planta fotografía revista
    pelota muñeca guitarra escalera tetera olla sartén alfombra bandeja cartera bufanda vela
    jarra estatua pluma radio
    """
)
_THINGS = tuple((w, _plural(w), "m") for w in _MASCULINE) + tuple(
    (w, _plural(w), "f") for w in _FEMININE
)
"""(singular, plural, gender) of each thing."""

# Adjectives ending in -o/-a take four forms; the others agree in number only.
_ADJECTIVES = tuple(
    (f"{s}o", f"{s}a", f"{s}os", f"{s}as")
    for s in _words(
        """
        roj pequeñ viej nuev pesad limpi blanc negr amarill car barat bonit larg cort antigu
        modern oscur redond llen vací rot precios extrañ suci liger estrech anch mojad sec
        """
    )
) + tuple(
    (w, w, _plural(w), _plural(w))
    for w in _words("verde grande azul gris enorme marrón frágil suave elegante")
)
"""(masculine singular, feminine singular, masculine plural, feminine plural)."""

_PEOPLE = _phrases(
    """
    el profesor, la profesora, mi hermana, mi hermano, nuestro vecino, nuestra vecina,
    el conductor, la conductora, un niño, una niña, el anciano, la abuela, el abuelo,
    el campesino, su amigo, su amiga, el médico, la enfermera, el cartero, la panadera,
    el alcalde, mi tío, mi tía, el pescador, la cocinera, el estudiante, la pintora, el músico,
    la cantante, mi madre, mi padre, la directora, el camarero, la jardinera, el carpintero,
    mi prima, mi primo
    """
)
_PEOPLE_PLURAL = (
    "los alumnos",
    "los vecinos",
    "mis padres",
    "las enfermeras",
    "los turistas",
    "los niños",
    "mis amigos",
    "los trabajadores",
    "las cocineras",
    "los pasajeros",
)
# Verbs: preterite 3rd singular and plural, infinitive, and the imperative tú (which is also
# the present 3rd singular for all of these).
_VERBS = tuple(
    tuple(line.split())
    for line in """
    encontró encontraron encontrar encuentra
    abrió abrieron abrir abre
    movió movieron mover mueve
    pintó pintaron pintar pinta
    llevó llevaron llevar lleva
    limpió limpiaron limpiar limpia
    vendió vendieron vender vende
    compró compraron comprar compra
    guardó guardaron guardar guarda
    escondió escondieron esconder esconde
    perdió perdieron perder pierde
    buscó buscaron buscar busca
    dejó dejaron dejar deja
    cerró cerraron cerrar cierra
    arregló arreglaron arreglar arregla
    lavó lavaron lavar lava
    envolvió envolvieron envolver envuelve
    mandó mandaron mandar manda
    recogió recogieron recoger recoge
    regaló regalaron regalar regala
    trajo trajeron traer trae
    subió subieron subir sube
    bajó bajaron bajar baja
    vació vaciaron vaciar vacía
    secó secaron secar seca
    """.strip().splitlines()
)
_PLACES_M = _words(
    """
    mercado río parque jardín puerto hospital museo pueblo bosque garaje sótano aeropuerto
    restaurante teatro puente ayuntamiento mercadillo
    """
)
_PLACES_F = _words(
    """
    cocina estación escuela plaza biblioteca playa iglesia tienda oficina granja farmacia
    panadería universidad fuente catedral
    """
)
_PLACES = tuple((w, "m") for w in _PLACES_M) + tuple((w, "f") for w in _PLACES_F)
# Prepositions ending in "de" or "a" contract with "el": "cerca del río", "junto al río".
_PREPOSITIONS = (
    "cerca de",
    "detrás de",
    "dentro de",
    "al lado de",
    "delante de",
    "lejos de",
    "enfrente de",
    "junto a",
    "en",
)
_TIMES = (
    "hoy",
    "mañana",
    "esta noche",
    "esta tarde",
    "la semana que viene",
    "el domingo",
    "pasado mañana",
    "enseguida",
    "más tarde",
    "el lunes",
    "el martes",
    "el miércoles",
    "el jueves",
    "el viernes",
    "el sábado",
)
_PAST_TIMES = ("ayer", "anoche", "la semana pasada", "el lunes", "el sábado", "esta mañana")
_MONTHS = _words(
    "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre"
)
_FOODS = _words(
    """
    naranjas manzanas patatas tomates arroz harina azúcar queso pescado carne uvas fresas
    zanahorias cebollas peras cerezas lentejas garbanzos pan café
    """
)
_MEASURED = (  # what rises or falls by a percentage: (phrase, plural)
    ("los precios", True),
    ("las ventas", True),
    ("los alquileres", True),
    ("las temperaturas", True),
    ("los salarios", True),
    ("las exportaciones", True),
    ("el paro", False),
    ("la producción", False),
    ("el tráfico", False),
    ("la población", False),
)
_CHANGES = (("subió", "subieron"), ("bajó", "bajaron"), ("creció", "crecieron"))
_WHEN_CHANGED = ("este año", "en marzo", "el año pasado", "en verano", "en invierno")
_EVENTS = (
    "la reunión",
    "el concierto",
    "la boda",
    "el examen",
    "la fiesta",
    "el partido",
    "la cena",
    "el viaje",
    "la excursión",
    "el mercado",
)
_BUILDINGS = ("el museo", "la biblioteca", "el puente", "la fábrica", "el hospital", "la escuela")
_ORDINALS_F = ("primera", "segunda", "tercera", "cuarta", "quinta", "última")
_SMALL_NUMBERS = ("dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "diez", "doce")


def _article(gender: str, plural: bool = False, definite: bool = True) -> str:
    if definite:
        return ("los" if gender == "m" else "las") if plural else ("el" if gender == "m" else "la")
    return ("unos" if gender == "m" else "unas") if plural else ("un" if gender == "m" else "una")


def _place(rng: random.Random) -> str:
    """A preposition and a place, with ``de el``/``a el`` contracted."""
    prep = rng.choice(_PREPOSITIONS)
    name, gender = rng.choice(_PLACES)
    article = _article(gender)
    if article == "el" and prep.endswith((" de", " a")):
        head, _, last = prep.rpartition(" ")
        return f"{head} {'del' if last == 'de' else 'al'} {name}"
    return f"{prep} {article} {name}"


def _count(rng: random.Random) -> str:
    """A count of things, spelled out or in digits; never ending in 1 (gender agreement)."""
    if rng.random() < 0.3:
        return rng.choice(_SMALL_NUMBERS)
    while (n := rng.randint(2, 99)) % 10 == 1 and n != 11:
        pass
    return str(n)


def _price(rng: random.Random) -> str:
    """An amount of euros: whole (``35``), with thousands (``2.500``) or with cents (``2,50``)."""
    kind = rng.random()
    if kind < 0.5:
        return f"{rng.randint(2, 99)} euros"
    if kind < 0.75:
        return f"{rng.randint(1, 9)}.{rng.choice((200, 250, 500, 750, 800))} euros"
    return f"{rng.randint(2, 30)},{rng.choice((20, 25, 50, 75, 90))} euros"


def _weight(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return f"{rng.randint(1, 12)},{rng.randint(1, 9)} kg"
    return f"{rng.randint(2, 20)} kg"


def _clock(rng: random.Random) -> str:
    return f"{rng.randint(7, 21)}:{rng.choice(('10', '15', '20', '30', '45'))}"


def general_sentence(rng: random.Random) -> str:
    """One Spanish sentence of 4 to 12 words, lowercase first letter, ending in ``.`` or ``?``."""
    c = rng.choice

    def noun_adj(plural: bool = False) -> str:
        sg, pl, g = c(_THINGS)
        adj = c(_ADJECTIVES)[(2 if plural else 0) + (g == "f")]
        return f"{_article(g, plural)} {pl if plural else sg} {adj}"

    def noun(definite: bool = True) -> str:
        sg, _, g = c(_THINGS)
        return f"{_article(g, False, definite)} {sg}"

    def counted() -> str:
        _, pl, g = c(_THINGS)
        return f"{_count(rng)} {pl} {c(_ADJECTIVES)[2 + (g == 'f')]}"

    def predicate() -> str:
        sg, _, g = c(_THINGS)
        return f"{_article(g)} {sg} es {c(_ADJECTIVES)[g == 'f']}"

    def percentage() -> str:
        what, plural = c(_MEASURED)
        return f"{what} {c(_CHANGES)[plural]} un {rng.randint(2, 40)}% {c(_WHEN_CHANGED)}."

    def date() -> str:
        return f"{rng.randint(1, 28)} de {c(_MONTHS)}"

    templates = (
        lambda: f"{c(_PEOPLE)} {c(_VERBS)[0]} {noun_adj()}.",
        lambda: f"{c(_PEOPLE)} {c(_VERBS)[0]} {noun(False)} {_place(rng)}.",
        lambda: f"vamos a {c(_VERBS)[2]} {noun()} {c(_TIMES)}.",
        lambda: f"por favor, {c(_VERBS)[3]} {noun_adj()} {c(_TIMES)}.",
        lambda: f"¿está {noun()} {_place(rng)}?",
        lambda: f"{predicate()}, y {predicate()}.",
        lambda: f"{c(_PEOPLE)} {c(_VERBS)[0]} {counted()}.",
        lambda: f"{c(_PEOPLE_PLURAL)} {c(_VERBS)[1]} {counted()} {c(_PAST_TIMES)}.",
        lambda: f"{noun_adj()} cuesta {_price(rng)}.",
        lambda: f"{c(_PEOPLE)} compró {_weight(rng)} de {c(_FOODS)}.",
        lambda: f"{c(_PEOPLE)} llegó el {date()}.",
        lambda: f"{c(_EVENTS)} es el {date()} a las {_clock(rng)}.",
        lambda: f"{c(_BUILDINGS)} abrió en {rng.randint(1890, 2023)}.",
        percentage,
        lambda: f"{c(_EVENTS)} empieza a las {_clock(rng)} {c(_TIMES)}.",
        lambda: f"es la {c(_ORDINALS_F)} vez que {c(_PEOPLE)} {c(_VERBS)[3]} {noun()}.",
    )
    return c(templates)()


# The basic vocabulary: the English general sentences' size (under 100 words, no digits), so a
# tiny model can learn the language in minutes (`make demo-language`). Masculine things only,
# adjectives after the noun, and prepositions that need no contraction (no "de el"/"a el").
_BASIC_PEOPLE = _phrases(
    "el maestro, mi hermana, mi hermano, nuestro vecino, el conductor, un niño, el abuelo,"
    " el granjero, su amiga, la doctora"
)
_BASIC_PAST = _words("encontró abrió movió pintó llevó limpió vendió compró")
_BASIC_INFINITIVE = _words("encontrar abrir mover pintar llevar limpiar vender comprar")
_BASIC_THINGS = _words("libro sillón cuadro paquete cesto billete vaso abrigo sombrero plato reloj")
_BASIC_ADJECTIVES = _words("rojo pequeño viejo nuevo pesado grande verde limpio blanco negro")
_BASIC_PLACES = _phrases("la cocina, la estación, el mercado, la escuela, el río, el parque")
_BASIC_PREPOSITIONS = _words("en hacia desde tras")
_BASIC_TIMES = _phrases("hoy, mañana, esta noche, esta tarde, el domingo, el lunes")


def basic_sentence(rng: random.Random) -> str:
    """One sentence of the basic vocabulary (4 to 9 words, no digits)."""
    c = rng.choice
    templates = (
        lambda: (
            f"{c(_BASIC_PEOPLE)} {c(_BASIC_PAST)} el {c(_BASIC_THINGS)} {c(_BASIC_ADJECTIVES)}."
        ),
        lambda: (
            f"{c(_BASIC_PEOPLE)} {c(_BASIC_PAST)} un {c(_BASIC_THINGS)} "
            f"{c(_BASIC_PREPOSITIONS)} {c(_BASIC_PLACES)}."
        ),
        lambda: f"vamos a {c(_BASIC_INFINITIVE)} el {c(_BASIC_THINGS)} {c(_BASIC_TIMES)}.",
        lambda: (
            f"hay que {c(_BASIC_INFINITIVE)} el {c(_BASIC_THINGS)} {c(_BASIC_ADJECTIVES)} "
            f"{c(_BASIC_TIMES)}."
        ),
        lambda: f"¿está el {c(_BASIC_THINGS)} en {c(_BASIC_PLACES)}?",
        lambda: (
            f"el {c(_BASIC_THINGS)} es {c(_BASIC_ADJECTIVES)}, y el {c(_BASIC_THINGS)} es "
            f"{c(_BASIC_ADJECTIVES)}."
        ),
    )
    return c(templates)()
