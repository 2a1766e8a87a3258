"""Requests for harmful help, threats, and signs of self-harm in incoming messages.

Flags:
- "harmful_request": a request framing (how do I / how to / help me / teach me / where can I
  buy / step by step / write a script that ... / an imperative task verb such as "write",
  "create", "explain" opening the message) together with a harmful act or object (violence
  against people, weapons and explosives, hacking and malware, fraud and theft, drugs,
  incitement). Harm words alone are not enough: "this price is killing me", "bomb of a deal"
  and "I could murder a coffee" have no request framing, and the acts are written with their
  targets ("kill someone", not "kill"), so "how do I kill a Python process" or "where can I
  shoot a good photo" do not match either;
- "threat": a violent threat at the business or its staff ("I will kill you", "I know where
  you live", "I'll burn your store down");
- "self_harm": the writer may hurt themselves ("I want to kill myself", "no reason to live",
  "how many pills to overdose"). The policy answers such messages with a safe response at
  once and alerts moderators, so hyperbole ("kill me now, this queue", "I'm dying to try it")
  is left out, while ambiguous first-person statements are kept.
All three are matched on the folded text (bot/safety/normalize.py).
"""

from __future__ import annotations

import re
from typing import ClassVar

from bot.safety.normalize import fold
from bot.safety.registry import Check, Stage

_W = r"(?:\W+[\w'-]+)"  # one more word
_PEOPLE = (
    r"(?:someone|somebody|anyone|everyone|people|a person|persons|humans?|him|her|them"
    r"|a (?:man|woman|child|kid|cop|police officer|politician|teacher|neighbou?r)"
    r"|(?:my|his|her|their|our|the) (?:\w+ )?(?:wife|husband|partner|boss|neighbou?rs?|ex"
    r"|girlfriend|boyfriend|family|kids?|children|mom|mum|dad|father|mother|brother|sister"
    r"|teacher|coworkers?|colleagues?|classmates?|roommate|landlord|president|enemy|enemies"
    r"|victims?|target)|(?:a|the) (?:water|food) supply"
    r"|(?:kids|children|students|civilians|a crowd|crowds|protesters|police|cops|jews|muslims"
    r"|christians|immigrants|minorities|animals|pets|a dog|a cat)|the president"
    r"|a (?:public )?figure|officials?|a witness|witnesses)"
)
_VIOLENT_VERB = (
    r"(?:kill|murder|assassinate|poison|torture|kidnap|abduct|strangle|stab|shoot|behead"
    r"|hurt|harm|injure|maim|attack|assault|rape|beat up|drown|suffocate|burn|execute|eliminate"
    r"|get rid of|dispose of|hang|lynch|mutilate|cripple|paralyze|run over|slaughter)"
)
_MAKE = (
    r"(?:make|making|build|building|create|creating|assemble|construct|craft|manufactur\w*"
    r"|detonat\w*|plant|cook|produce|brew|synthesi[sz]e|3d[- ]print|design|develop|write"
    r"|writing|code|program|spread|release|deploy|launch|distribute|install|set up|run|send"
    r"|conduct|carry out|perform|plan|planning|execute|use|using|obtain|acquire|smuggle)"
)
# Dangerous whatever the verb (a request framing is still needed).
_WEAPON = (
    r"(?:explosives?|explosive devices?|grenades?|molotov\w*|napalm|thermite|detonators?"
    r"|landmines?|(?:chemical|biological|nuclear|radiological) weapons?|bio-?weapons?"
    r"|weapons? of mass destruction|nerve agents?|sarin|ricin|anthrax|mustard gas|vx gas)"
)
_EXPLOSIVE = (
    r"(?:(?<!bath )(?<!seed )(?<!glitter )(?<!flavor )(?<!flavour )(?<!cherry )(?<!calorie )"
    r"(?<!stink )(?<!photo)(?:pipe |nail |car |dirty |letter |homemade |home-made "
    rf"|fertili[sz]er )?bombs?|ieds?|{_WEAPON})"
)
_MALWARE = (
    r"(?:malware|ransomware|spyware|keyloggers?|botnets?|trojans?|rootkits?|computer worms?"
    r"|(?:computer )?virus(?:es)?|ddos(?: attacks?)?|denial[- ]of[- ]service(?: attacks?)?"
    r"|phishing(?: \w+)?|sql injections?|zero[- ]days?|exploit kits?|credential stuffing"
    r"|brute[- ]force attacks?|cyber ?attacks?|stalkerware|fake (?:website|login page|app))"
)
_ACTS = (
    # violence against people
    rf"\b{_VIOLENT_VERB}{_W}{{0,2}}?\W+{_PEOPLE}\b",
    r"\b(?:(?:plan|planning|commit|committing) (?:a )?murder|assassinat\w*|kidnapp?\w*"
    r"|mass shooting|school shooting|shooting spree"
    r"|terroris[mt]\w*|terror attacks?|genocide|ethnic cleansing|hit ?man|contract killing"
    r"|human trafficking|sex trafficking|child (?:abuse|porn\w*|exploitation)|death threats?"
    r"|threatening (?:letter|message|note|email)|hate crimes?|animal cruelty"
    r"|(?:harm|hurt|abuse|torture|kill) animals|lynching|arson|vandali[sz]\w*)\b",
    r"\b(?:dispose of|hide|get rid of) (?:a |the )?(?:dead )?bod(?:y|ies)\b",
    r"\b(?:without|avoid|avoiding|never) (?:getting caught|leaving (?:a )?(?:trace|evidence)"
    r"|detection|being detected|being traced)\b",
    r"\bget away with (?:murder|it|a crime|crimes|killing|stealing|fraud)\b",
    # weapons, explosives, poison
    rf"\b{_MAKE}(?:\W+[\w'-]+){{0,3}}?\W+(?:{_EXPLOSIVE}|poisons?|guns?|firearms?|rifles?"
    r"|pistols?|silencers?|suppressors?|ammunition|weapons?)\b",
    rf"\b(?:buy|get|find|order|purchase|score){_W}{{0,3}}?\W+{_EXPLOSIVE}\b",
    r"\b(?:ghost|untraceable|3d[- ]printed|homemade|home-made|illegal) (?:guns?|firearms?"
    r"|weapons?)\b",
    r"\b(?:guns?|firearms?|weapons?|ammo|ammunition|explosives?)\W+(?:\w+\W+){0,4}?"
    r"(?:illegally|without (?:a )?(?:licen[cs]e|background check|permit|serial)|on the dark ?web)",
    r"\b(?:bomb|explosive|weapon|gun) (?:making|recipe|instructions|threats?|plans?)\b",
    r"\b(?:convert|modify)\w*\W+(?:\w+\W+){0,3}?(?:full[- ]auto|automatic|fully automatic)\b",
    # hacking and malware
    r"\bhack(?:s|ing)?\W+(?:into|in to|someone|somebody|(?:an?|his|her|their|other people's"
    r"|people's|the|any|secure|government) (?:\w+ )?(?:accounts?|emails?|phones?|networks?"
    r"|computers?|servers?|databases?|websites?|systems?|banks?|wi-?fi|cameras?|government"
    r"|facebook|instagram|iphone|gmail|devices?|cars?|grid))\b",
    rf"\b{_MAKE}(?:\W+[\w'-]+){{0,4}}?\W+{_MALWARE}\b",
    r"\bexploit\w*\W+(?:\w+\W+){0,3}?vulnerabilit\w+",
    r"\b(?:crack|steal|bypass|guess)\w*\W+(?:\w+\W+){0,2}?(?:passwords?|passcodes?|2fa"
    r"|two-factor|encryption|drm|software licen[cs]es?|license keys?|activation)\b",
    # fraud, theft and other crimes
    r"\b(?:steal\w*|shoplift\w*|burglar\w*|pickpocket\w*|embezzl\w*|launder\w*|counterfeit\w*"
    r"|forge|forging|forged|falsif\w*|identity theft|insider trading|tax evasion"
    r"|evade (?:taxes|tax|the police|police|law enforcement|arrest|capture|security)"
    r"|ponzi|pyramid scheme|bribe|bribing|blackmail\w*|extort\w*|spy on|smuggl\w*"
    r"|traffick\w*|hotwir\w*|rig (?:an? |the )?elections?|pirat\w+ (?:software|movies|content)"
    r"|cheat (?:on|in) (?:a |an |the )?(?:tests?|exams?)"
    r"|fake (?:ids?|passports?|documents?|reviews?|news|money|invoices?|prescriptions?"
    r"|medical records|identit\w+|charity|degrees?|social media accounts?)"
    r"|stalk (?:someone|her|him|them|my ex|people)|track (?:someone|somebody)(?:'s)?"
    r"|break(?:ing)? into (?:a |an |the |someone's |my neighbou?r's |his |her |people's )?"
    r"(?:house|home|car|apartment|building|safe|account|store|shop|atm|computer|network"
    r"|system|database|phone|email)"
    r"|manipulat\w* (?:someone|people|them|him|her|vulnerable|the (?:stock|market|elections?))"
    r"|commit (?:a )?(?:crimes?|fraud|murder|suicide|arson|theft|robbery|identity theft"
    r"|insider trading|treason|perjury|a felony|violence|tax fraud|insurance fraud))\b",
    r"\b(?:cocaine|heroin|meth|methamphetamine|crystal meth|fentanyl|lsd|mdma|ecstasy|crack "
    r"cocaine|illegal drugs|illicit drugs|controlled substances?|date rape drugs?|roofies"
    r"|ghb)\b",
    # incitement, misinformation, dangerous behaviour
    r"\b(?:promot|glorif|encourag|incit|advocat|spread|normaliz|normalis)\w*(?:\W+\w+){0,4}?\W+"
    r"(?:violence|hatred|hate|terroris\w+|self-harm|self harm|suicide|anorexia|bulimia"
    r"|eating disorders?|drug use|racism|discrimination|drunk driving|dangerous behaviou?rs?"
    r"|extremis\w+|misinformation|disinformation|conspiracy|racial|sexism|misogyny|riots?)\b",
    r"\b(?:misinformation|disinformation|propaganda|hate speech|conspiracy theor\w+"
    r"|racist|sexist|radicali[sz]\w*|extremist \w+|inferior to others|dehumani[sz]\w*"
    r"|oppression of|violent crimes?|acts? of violence|violence against|harm (?:to )?others"
    r"|harming others|hit[- ]and[- ]run|destr\w* (?:of )?(?:the )?evidence|dangerous stunts"
    r"|reckless driving|steroids|performance[- ]enhancing drugs|social engineering"
    r"|cyberstalk\w*|cyberbull\w*|hoax\w*|lock ?picking)\b",
    # more of the above, found on the dev half of the public set
    r"\b(?:hijack (?:an?|the|someone's|users?'?s?|people's) (?:\w+ )?(?:car|plane|webcam"
    r"|camera|account|system|vehicle|session|computer|device|drone|truck|ship|bus|train)"
    r"|crash (?:a|the|someone's) (?:\w+ )?(?:computer|system|server|website|network|car|plane)"
    r"|(?:deny|denies|denying) access to|cause (?:physical )?(?:harm|accidents?|crash\w*"
    r"|panic|chaos|damage|delays|disruptions?|a recession|a stock market crash)"
    r"|sabotag\w*|infiltrat\w*|unauthori[sz]ed access|bypass (?:the )?security|(?:evade|bypass)"
    r" (?:anti-?virus|antivirus|detection|security)|circumvent (?:\w+ )?(?:censorship"
    r"|surveillance|security)|harvest\w* (?:\w+ )?(?:data|information|emails|credentials)"
    r"|access\w* (?:\w+ )?confidential|theft of (?:credit card|personal|sensitive|user"
    r"|customer|financial|identit)\w*|commit (?:\w+ ){0,2}fraud|illegally (?:access|download"
    r"|obtain|acquire|buy|sell|distribute|share|copy|stream|hack|enter|track)\w*"
    r"|(?:send|sends|sending) (?:\w+ )?(?:spam|unsolicited)|spread\w* (?:false information"
    r"|lies|rumou?rs|panic|fear|chaos)|mislead\w* (?:the public|consumers|customers|voters"
    r"|people|potential customers)|manipulat\w* (?:or trick |stock |share )?(?:prices|financial"
    r" (?:data|markets?)|markets?|customer ratings|ratings|reviews|voters|the public|people"
    r"|someone)|trick\w* (?:people|someone|users|an individual|individuals|victims"
    r"|the elderly) into|groom\w* (?:other users|children|kids|minors|a child|teens)"
    r"|pos(?:e|es|ing) as a minor|sexual conversations|exploit\w* (?:their|vulnerable|the"
    r" vulnerable|children|workers|insecurities)|targets? vulnerable|romance scam|scam\w*"
    r" (?:people|someone|users|the elderly|elderly|victims)|lure\w* (?:vulnerable|children"
    r"|kids|people|victims|individuals)|pick (?:a|the|someone's) lock|copyrighted"
    r" (?:material|content|movies|music)|harass (?:others|someone|people|users|her|him|them)"
    r"|(?:bully|bullying) (?:and|or) harass\w*|bully (?:others|someone|people)"
    r"|track\w* (?:\w+ )?location without|without (?:their|his|her|the user's|users')"
    r" (?:consent|knowledge|permission))\b",
    r"\bdrugs\b(?=.*\b(?:synthesi[sz]\w*|household chemicals)\b)",
    rf"\b{_WEAPON}\b",
)
_ACT = re.compile("|".join(f"(?:{a})" for a in _ACTS))

# How the harm is asked for. Imperative task verbs ("Write a tutorial on ...", "Create a
# fake ...") must open the message or a sentence; question framings may stand anywhere.
_FRAMING = re.compile(
    r"\bhow (?:do|does|can|could|would|should|might|to|would one|do you|can you|much|many)\b"
    r"|\b(?:help|teach|show|tell|explain to|walk) me\b|\bstep[- ]by[- ]step\b"
    r"|\b(?:instructions?|guide|tutorial|manual|recipe|plan|strategy|tips|advice|ways?"
    r"|methods?|techniques?|tricks?|steps) (?:to|for|on|of|that)\b|\bbest way\b"
    r"|\bwhere (?:can|could|do|should|would) (?:i|we|you|one) (?:buy|get|find|order|purchase"
    r"|obtain|score|hire|download|learn)\b|\bwhat(?:'s| is) the (?:best|easiest|quickest) way\b"
    r"|\b(?:can|could|would|will) you (?:please )?(?:write|make|create|give|tell|show|help"
    r"|explain|teach|generate|provide|design|develop|build|code|find)\b"
    r"|\bi (?:want|need|would like|wanna|plan|am going|'m going|intend) to\b"
    r"|\bis it possible to\b|\bany (?:tips|ideas|way) (?:to|for|on)\b"
    r"|(?:^|[.!?\n]\s*|\bplease\s+|\b(?:and|then)\s+)(?:write|create|develop|design|build"
    r"|make|generate|provide|give|outline|describe|explain|instruct|produce|draft|compose"
    r"|suggest|offer|demonstrate|publish|post|share|show|teach|list|detail|program|code|plan"
    r"|prepare|construct|craft|devise|implement|release|train|use|conduct|guide|help|exploit"
    r"|hack|steal|manipulate|spread|illustrate|film|record|send|hijack|interfere|sabotage"
    r"|infiltrate|obtain|acquire|promote|encourage|incite|falsify|cheat|commit)\b"
)

_STAFF = (
    r"(?:you|ya|u|ur|y'all|all of you|everyone (?:there|at \w+)|your (?:staff|family|manager"
    r"|kids|employees|workers|boss|ceo)|the (?:staff|manager|owner|ceo|driver|courier))"
)
_PREMISES = r"(?:store|shop|office|building|warehouse|place|house|car|windows?|headquarters|hq)"
_THREAT = re.compile(
    r"\b(?:i|we)(?:'ll| will|'m going to| am going to|'m gonna| am gonna| gonna| shall)"
    r"(?: \w+)?\W+(?:kill|murder|shoot|stab|hurt|strangle|hunt down|beat up|come after"
    rf"|slit|break your|punch|choke|hang|bury)\w*\W+{_STAFF}\b"
    r"|\b(?:i|we)(?:'ll| will|'m going to| am going to|'m gonna| am gonna| gonna)(?: \w+)?\W+"
    rf"(?:burn|torch|bomb|blow up|shoot up|smash|firebomb)\w*\W+(?:down |up )?(?:your|the)"
    rf" {_PREMISES}\b"
    r"|\bi know where you (?:live|work|sleep)\b|\byou(?:'re| are) (?:so )?dead\b(?! wrong)"
    r"|\bwatch your back\b|\byou(?:'ll| will) (?:regret|pay for) (?:this|it)\b(?=.*\b(?:kill"
    r"|hurt|blood|dead|die|gun|knife)\b)"
    r"|\b(?:you|u) (?:should|deserve to|ought to|better|will|gonna) (?:go )?die\b"
    r"|\b(?:bomb|burn down|blow up|shoot up) (?:your|the|this) " + _PREMISES + r"\b"
)

_DIE = r"die(?! (?:of|from|laughing|waiting|for|when|if|before|without|happy|a little))"
_SELF_HARM = re.compile(
    r"\b(?:kill(?:ing)? my ?self|end(?:ing)? my (?:own )?life|take my (?:own )?life"
    r"|suicid(?:e|al)|self[- ]?harm\w*|(?:hurt|harm|cut|burn)(?:ing)? my ?self"
    r"(?! (?:on|while|with|opening|using|when|lifting|assembling|by accident|accidentally"
    r"|shaving|cooking|at work|in the|badly on))"
    r"|(?:slit|cut|slash) my (?:wrists?|throat)|hang(?:ing)? my ?self"
    rf"|(?:want|wanna|going|ready|wish|like) (?:to|i could|i was|i were) (?:just )?(?:{_DIE}"
    r"|be dead|disappear forever|not wake up|not exist)|better off dead|better off without me"
    r"|no (?:reason|point) (?:to|in) (?:live|living|go on|going on|being alive)"
    r"|can'?t go on (?:anymore|any ?longer|living|like this)"
    r"|don'?t want to (?:live|be alive|exist|wake up)(?! (?:in|with|near|without))"
    r"|overdos\w*|od on|jump (?:off|from) (?:a|the|my) (?:bridge|building|roof|balcony|cliff)"
    r"|painless (?:way|death|method)|(?:how|ways?) (?:many|much) (?:pills|tablets|\w+ pills)"
    r" (?:to|would|will|does it take to) (?:die|kill|end|overdose)|kms(?! lol| lmao| haha)"
    r"|end it (?:all|tonight|today|now)|(?:unalive|unaliving) my ?self)\b"
)
# Titles and idioms that mention suicide or overdoses without meaning them.
_SELF_HARM_EXEMPT = re.compile(
    r"\b(?:suicide (?:squad|doors?|mission|run|blonde|prevention|hotline)|pills? organi[sz]er"
    r"|overdos\w* on (?:chocolate|cake|sugar|coffee|caffeine|netflix|cuteness|sweets|candy))\b"
)


# Words without which _FRAMING cannot match (its question words and imperative verbs).
_FRAMING_KEYS = frozenset(
    """
    how help teach show tell explain walk step instructions instruction guide tutorial manual
    recipe plan strategy tips advice way ways method methods technique techniques trick tricks
    steps best where what can could would will want need like wanna intend going possible any
    write create develop design build make generate provide give outline describe instruct
    produce draft compose suggest offer demonstrate publish post share list detail program code
    prepare construct craft devise implement release train use conduct exploit hack steal
    manipulate spread illustrate film record send hijack interfere sabotage infiltrate obtain
    acquire promote encourage incite falsify cheat commit
    """.split()  # noqa: SIM905 - a word list reads better as text
)
# Word beginnings without which the threat and self-harm patterns cannot match.
_THREAT_STEMS = (
    "kill", "murder", "shoot", "stab", "hurt", "strangl", "hunt", "beat", "come", "slit", "break",
    "punch", "chok", "hang", "bury", "burn", "torch", "bomb", "blow", "smash", "firebomb", "know",
    "dead", "watch", "regret", "pay", "die",
)  # fmt: skip
_SELF_HARM_STEMS = (
    "kill", "end", "take", "suicid", "self", "harm", "hurt", "cut", "burn", "slit", "slash", "hang",
    "want", "wanna", "going", "ready", "wish", "like", "better", "reason", "point", "go", "overdos",
    "od", "jump", "painless", "pill", "tablet", "kms", "unaliv",
)  # fmt: skip


def _has_stem(words: frozenset[str], stems: tuple[str, ...]) -> bool:
    return any(w.startswith(stems) for w in words)


class HarmfulCheck(Check):
    """Flags requests for harmful help, violent threats and signs of self-harm."""

    name = "harmful"
    stages: ClassVar[frozenset[Stage]] = frozenset({"input"})
    flags = ("harmful_request", "threat", "self_harm")

    def check(self, text: str) -> tuple[str, ...]:
        folded = fold(text)
        found = []
        if (
            not folded.words.isdisjoint(_FRAMING_KEYS)
            and _FRAMING.search(folded.text)
            and _ACT.search(folded.text)
        ):
            found.append("harmful_request")
        if _has_stem(folded.words, _THREAT_STEMS) and _THREAT.search(folded.text):
            found.append("threat")
        if (
            _has_stem(folded.words, _SELF_HARM_STEMS)
            and _SELF_HARM.search(folded.text)
            and not _SELF_HARM_EXEMPT.search(folded.text)
        ):
            found.append("self_harm")
        return tuple(found)
