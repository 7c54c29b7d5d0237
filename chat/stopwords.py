"""Words that carry no weight in retrieval, per language: function words, question words and chat filler.

Data only (written for Netia, folded like `chat.intents.normalize`: lowercase, no accents). They are
dropped from the index and from questions, so "what are your opening hours?" searches for "opening hours",
and they are also the evidence `chat.text.language_detect` counts to tell a message's language.
"""

from __future__ import annotations

# fmt: off
_EN = """
a about above after again against all also am an and any are arent as at be because been before being below
between both but by can cant could couldnt did didnt do does doesnt doing dont down during each either else
ever every few for from further get gets getting got had hadnt has hasnt have havent having he her here hers
herself him himself his how i id if ill im in into is isnt it its itself ive just let lets like me might more
most much must my myself no nor not now of off on once only or other ought our ours ourselves out over own
please really same shall she should shouldnt so some such than that thats the their theirs them themselves
then there theres these they theyre this those through to too under until up upon us very was wasnt we were
werent what whats when where wheres which while who whom whose why will with wont would wouldnt you youd youll
your youre yours yourself yourselves ve re ll s t d m
hi hello hey thanks thank ok okay yes yeah tell know want wanted need wondering wonder possible anyone someone
something anything thing things kind sort guys also still already maybe perhaps im ive id going gonna wanna
"""

_ES = """
a al algo algun alguna algunas alguno algunos ante antes aqui asi aun aunque cada como con contra cual cuales
cualquier cuando cuanta cuantas cuanto cuantos de del desde donde dos el ella ellas ellos en entre era eran
eres es esa esas ese eso esos esta estaba estado estais estamos estan estar estas este esto estos estoy fue
fueron ha habeis haber habia han has hasta hay he la las le les lo los mas me mi mis mucho muchos muy nada ni
no nos nosotras nosotros nuestra nuestras nuestro nuestros o os otra otras otro otros para pero poco por porque
puede pueden puedo puedes podeis podemos que quien quienes se sea ser si sin sobre son soy su sus suya suyo
tambien te teneis tenemos tener tengo ti tiene tienen tienes toda todas todo todos tu tus un una unas uno unos
usted ustedes vosotras vosotros vuestra vuestro y ya yo
hola buenas gracias vale quiero queria quisiera saber necesito podria podrias podrian seria hacer haceis
hacen hace hago alguien
"""

_FR = """
a ai aie aient aies ait as au aucun aucune aupres aussi autre autres aux avaient avais avait avec avez aviez
avoir avons ayant c ca ce ceci cela celle celles celui ces cet cette chez comme comment d dans de des donc dont
du elle elles en encore es est et etaient etais etait etes etre eu eux faut il ils j je l la le les leur leurs
lui m ma mais me meme mes moi mon n ne ni nos notre nous on ont ou par pas peu peut peuvent peux plus pour
pourquoi pouvez pouvons puis qu quand que quel quelle quelles quels qui s sa sans se sera ses si son sont
sur t ta te tes toi ton tous tout toute toutes tu un une vos votre vous y
bonjour salut merci svp voudrais veux savoir besoin quelqu quelque chose
"""

_DE = """
ab aber alle allem allen aller alles als also am an auch auf aus bei beim bin bis bist da damit dann das dass
dem den denn der des dich die dies diese diesem diesen dieser dieses dir doch dort du durch ein eine einem
einen einer eines er es etwas euch euer eure fur gibt hab habe haben habt hat hatte ich ihr ihre ihnen im in
ist ja jede jeder jetzt kann kannst konnen konnt mich mir mit muss nach nein nicht noch nun nur ob oder ohne
sehr sein seine sich sie sind so soll uber um und uns unser unsere vom von vor war waren was welche welcher
wenn wer wie wir wird wo wollen zu zum zur
hallo danke bitte mochte mochten wissen brauche
"""

_PT = """
a ao aos aquela aquele aquilo as ate com como da das de dela dele deles do dos e ela elas ele eles em entre era
essa esse esta estao estar este eu foi ha isso isto ja la lhe mais mas me mesmo meu minha muito na nao nas nem
no nos nossa nosso num numa o os ou para pela pelo por qual quando que quem se sem ser seu sua sao tambem tem
tenho ter teu tu um uma voce voces vos
ola obrigado obrigada gostaria queria quero saber preciso podem pode posso
"""

_IT = """
a ad al alla alle allo agli ai anche avete avere c che chi ci come con cosa cui da dal dalla dei del della delle
dello di dove e ed gli ha hai hanno ho i il in io la le lei li lo loro lui ma mi mia mio ne nei nel nella noi
non o per perche piu puo qual quale quali quando quanto se si sia siete sono su sua suo ti tra tu un una uno
vi voi
ciao buongiorno grazie vorrei sapere posso potete
"""

_NL = """
aan al als bij dan dat de der des deze die dit doe doen door dus een en er ge geen had heb hebben heeft het hier
hij hoe hun ik in is ja je jij jullie kan kon kunnen maar me meer men met mij mijn na naar niet nog nu of om
omdat ons onze ook op over te tot u uit uw van veel voor waar wanneer want was wat we wel welk welke wie wij
wil wordt zal ze zich zij zijn zo zou
hallo dank bedankt graag weten
"""
# fmt: on

STOPWORDS: dict[str, frozenset[str]] = {
    language: frozenset(words.split())
    for language, words in {"en": _EN, "es": _ES, "fr": _FR, "de": _DE, "pt": _PT, "it": _IT, "nl": _NL}.items()
}

# Phrases asking for a price, then for another figure (a time, a duration, an address): the offline responder
# prefers a sentence stating an amount, an address, or holding a figure, to answer them.
# fmt: off
PRICE_QUESTIONS = (
    "how much", "cost", "costs", "price", "prices", "fee", "fees",
    "cuanto cuesta", "cuanto cuestan", "cuanto vale", "cuanto es", "precio", "precios", "cuesta", "cuestan",
    "cobrais", "cobran",
    "combien", "prix", "coute", "coutent", "tarif",
    "wie viel", "wieviel", "kostet", "kosten", "preis",
    "quanto custa", "preco", "precos", "custa",
    "quanto costa", "prezzo", "costa",
    "hoeveel", "prijs", "kost",
)
# Phrases asking where something is: the answer is a sentence holding an address.
LOCATION_QUESTIONS = (
    "where", "address", "located", "location",
    "donde", "direccion", "ubicacion", "ubicados",
    "ou est", "ou etes", "ou se trouve", "adresse",
    "wo", "anschrift",
    "onde", "endereco", "morada",
    "dove", "indirizzo",
    "waar", "adres",
)
NUMBER_QUESTIONS = (
    *PRICE_QUESTIONS,
    *LOCATION_QUESTIONS,
    "how many", "how long", "what time", "when",
    "cuanto", "cuanta", "cuantos", "cuantas", "cuando", "que hora",
    "quand", "quelle heure",
    "wann", "wie lange",
    "quanto", "quanta", "quando", "que horas",
    "che ora",
    "wanneer", "hoe laat", "hoe lang",
)
# fmt: on
