"""The built-in lexicons: English and Russian words and stems, and the emoticons and emoji
every language shares. Weights are on VADER's scale, -4 (worst) to +4 (best)."""

from __future__ import annotations

from typing import Any

_EN_POSITIVE = """
good:1.9 great:3.1 excellent:3.2 amazing:2.8 awesome:3.1 wonderful:2.7 fantastic:2.6
perfect:2.7 love:3.2 loved:2.9 loves:2.7 lovely:2.8 like:1.5 liked:1.5 likes:1.5 nice:1.8
happy:2.7 glad:2.0 pleased:1.9 delighted:3.1 satisfied:1.8 enjoy:2.2 enjoyed:2.3 fun:2.3
best:3.2 better:1.9 beautiful:2.9 brilliant:2.8 superb:3.1 outstanding:3.0 impressive:2.3
helpful:1.8 useful:1.9 friendly:2.2 kind:2.4 polite:1.6 fast:1.2 quick:1.0 easy:1.9
smooth:1.2 reliable:1.8 recommend:1.5 recommended:1.5 thanks:1.9 thank:1.5 grateful:2.0
appreciate:1.7 appreciated:2.3 fine:0.8 ok:0.9 okay:0.9 cool:1.3 pleasant:2.3 favorite:2.0
favourite:2.0 win:2.8 wins:2.7 success:2.7 successful:2.8 solved:1.3 works:0.8 worked:0.8
correct:1.3 clear:1.6 comfortable:1.8 clean:1.7 fresh:1.3 tasty:2.1 delicious:2.7
generous:2.3 honest:2.3 calm:1.3 safe:1.9 secure:1.4 strong:1.8 positive:2.6 wow:2.8
incredible:2.4 exceptional:2.6 terrific:2.5 magnificent:3.3 marvelous:2.9 gorgeous:3.0
cute:2.0 sweet:2.0 hope:1.9 hopeful:1.6 excited:1.4 exciting:2.2 proud:2.1 relieved:1.6
yes:1.7 yay:2.4 haha:2.0 lol:1.8 improved:2.1 improvement:2.0 fixed:1.1 fair:1.3 valuable:2.1
"""
_EN_NEGATIVE = """
bad:-2.5 terrible:-2.1 awful:-2.0 horrible:-2.5 worst:-3.1 worse:-2.1 poor:-2.1 hate:-2.7
hated:-3.2 hates:-1.9 dislike:-1.6 disliked:-1.7 sad:-2.1 unhappy:-1.8 angry:-2.3 annoyed:-1.6
annoying:-1.7 disappointed:-1.9 disappointing:-2.2 disappointment:-2.3 useless:-1.8
broken:-1.4 broke:-1.8 fail:-2.5 failed:-2.3 fails:-2.2 failure:-2.3 wrong:-2.1 slow:-1.1
rude:-2.0 ugly:-2.3 boring:-1.3 bored:-1.1 expensive:-0.8 overpriced:-1.9 dirty:-1.9 cold:-0.5
problem:-1.7 problems:-1.7 issue:-0.8 issues:-0.9 bug:-0.9 bugs:-1.0 error:-1.4 errors:-1.4
crash:-1.7 crashed:-1.6 crashes:-1.6 waste:-1.8 wasted:-2.2 nasty:-2.6 stupid:-2.4 mess:-1.5
confusing:-1.3 confused:-1.3 difficult:-1.5 hard:-0.4 painful:-2.2 pain:-2.3 sorry:-0.3
scam:-2.6 fraud:-2.8 lies:-1.8 lie:-1.6 liar:-2.3 refund:-0.5 complaint:-1.6 complain:-1.5
frustrated:-2.4 frustrating:-1.9 upset:-1.6 mad:-2.2 furious:-2.7 worried:-1.2
fear:-2.2 scared:-1.9 afraid:-2.0 terrible:-2.1 disgusting:-2.4 pathetic:-2.6 lame:-1.7
unacceptable:-2.0 unfortunately:-1.5 missing:-1.2 lost:-1.3 late:-0.8 delay:-1.3 delayed:-1.3
cancel:-0.9 cancelled:-1.1 unusable:-2.3 garbage:-2.6 trash:-2.0 sucks:-1.5 suck:-1.9
meh:-0.3 damn:-1.7 ugh:-1.8 dreadful:-2.5 miserable:-2.2 lousy:-2.5 mediocre:-0.3
"""
_EN_STEMS = {"disappoint": -2.0, "frustrat": -2.1, "recommend": 1.5, "appreciat": 1.9,
             "impress": 2.0, "delight": 2.9, "horrib": -2.4, "terrib": -2.2}  # fmt: skip

_RU_STEMS = """
хорош:2.0 отличн:3.0 прекрасн:3.0 замечательн:2.9 великолепн:3.1 превосходн:3.1 чудесн:2.8
супер:2.7 классн:2.4 круто:2.4 крут:2.3 любл:2.6 любим:2.4 нрав:1.8 понрав:1.9
доволен:2.0 довольн:2.0
счастлив:2.8 спасиб:1.9 благодар:2.0 удобн:1.9 быстр:1.2 полезн:1.9 приятн:2.2 вкусн:2.2
лучш:3.0 идеальн:2.8 надёжн:1.8 надежн:1.8 вежлив:1.7 дружелюбн:2.1 восхитительн:3.0
рекоменд:1.5 успешн:2.3 норм:0.8 интересн:1.7 красив:2.5 чист:1.5 помог:1.6 работает:0.8
плох:-2.5 ужасн:-2.9 отвратительн:-3.0 кошмар:-2.8 худш:-3.1 хуже:-2.0 ненави:-3.0 злит:-2.0
разочарова:-2.1 груб:-2.0 медленн:-1.2 сломал:-1.8 слома:-1.6 ошибк:-1.4
проблем:-1.7 бесполезн:-2.0 скучн:-1.5 грязн:-1.9 обман:-2.6 мошенни:-2.9 злой:-2.0 злая:-2.0
печальн:-2.0 грустн:-2.0 жаль:-1.2 отстой:-2.6 ужас:-2.7 бесит:-2.4 раздража:-1.9
неудобн:-1.8 непонятн:-1.3 сложн:-1.1 опозда:-1.3 задержк:-1.3 хамск:-2.4 хамств:-2.4
"""

EMOTICONS = {
    ":)": 2.0, ":-)": 2.0, "(:": 2.0, ":d": 2.4, ":-d": 2.4, "xd": 1.8, ";)": 1.6, ";-)": 1.6,
    ":p": 1.2, "<3": 2.9, "=)": 1.8, ":]": 1.8, ":(": -2.2, ":-(": -2.2, "):": -2.2,
    ":'(": -2.5, ":/": -1.2, ":-/": -1.2, ":|": -0.7, ">:(": -2.6, "=(": -2.0,
    "😀": 2.4, "😃": 2.4, "😄": 2.5, "😁": 2.4, "😊": 2.5, "🙂": 1.6, "😍": 3.0, "🥰": 3.0,
    "😂": 1.8, "🤣": 1.8, "😉": 1.6, "👍": 2.0, "👏": 2.1, "🎉": 2.4, "❤": 2.9, "❤️": 2.9,
    "💯": 2.0, "🙏": 1.5, "😎": 1.9, "✨": 1.3, "🔥": 1.5, "😢": -2.2, "😭": -2.4,
    "😞": -2.1, "😔": -1.8, "😠": -2.6, "😡": -2.9, "🤬": -3.1, "👎": -2.0, "😒": -1.6,
    "🙁": -1.6, "☹": -2.0, "😩": -2.1, "😫": -2.1, "💩": -1.8, "🤮": -2.6, "😤": -1.9,
}  # fmt: skip


def _pairs(text: str) -> dict[str, float]:
    out = {}
    for item in text.split():
        word, _, weight = item.rpartition(":")
        out[word] = float(weight)
    return out


BUILTIN: dict[str, dict[str, Any]] = {
    "en": {
        "words": {**_pairs(_EN_POSITIVE), **_pairs(_EN_NEGATIVE)},
        "stems": _EN_STEMS,
        "negators": [
            "not",
            "no",
            "never",
            "none",
            "nobody",
            "nothing",
            "neither",
            "nor",
            "nowhere",
            "cannot",
            "cant",
            "can't",
            "dont",
            "don't",
            "doesn't",
            "doesnt",
            "didn't",
            "didnt",
            "isn't",
            "isnt",
            "wasn't",
            "wasnt",
            "aren't",
            "arent",
            "won't",
            "wont",
            "wouldn't",
            "wouldnt",
            "shouldn't",
            "couldn't",
            "hardly",
            "without",
            "haven't",
            "hasn't",
            "weren't",
        ],
        "intensifiers": {
            "very": 1.3,
            "really": 1.3,
            "extremely": 1.5,
            "so": 1.25,
            "super": 1.3,
            "incredibly": 1.4,
            "absolutely": 1.4,
            "totally": 1.3,
            "completely": 1.3,
            "highly": 1.3,
            "truly": 1.25,
            "most": 1.2,
            "too": 1.2,
            "utterly": 1.4,
            "slightly": 0.6,
            "somewhat": 0.7,
            "barely": 0.5,
            "kinda": 0.7,
            "little": 0.7,
            "fairly": 0.85,
            "rather": 0.85,
            "quite": 1.1,
            "pretty": 1.1,
            "almost": 0.7,
            "marginally": 0.6,
        },
        "contrast": ["but", "however", "yet", "although", "though"],
    },
    "ru": {
        "words": {
            "рад": 2.1,
            "рада": 2.1,
            "рады": 2.1,
            "класс": 2.0,
            "дорого": -0.8,
            "долго": -1.0,
            "хам": -2.4,
            "ок": 0.9,
        },
        "stems": _pairs(_RU_STEMS),
        "negators": ["не", "нет", "ни", "никогда", "ничего", "нисколько", "без", "никак"],
        "intensifiers": {
            "очень": 1.3,
            "крайне": 1.5,
            "совсем": 1.3,
            "абсолютно": 1.4,
            "совершенно": 1.4,
            "невероятно": 1.4,
            "так": 1.25,
            "такой": 1.25,
            "настолько": 1.3,
            "реально": 1.3,
            "слишком": 1.2,
            "чрезвычайно": 1.5,
            "весьма": 1.2,
            "довольно": 0.85,
            "слегка": 0.6,
            "немного": 0.6,
            "чуть": 0.6,
            "едва": 0.5,
            "почти": 0.7,
        },
        "contrast": ["но", "однако", "зато", "хотя"],
    },
}
