"""Opposite poles: "positive" / "negative effects", "gain" / "lose weight", "buy" / "sell".

An embedding reads a question and its opposite as neighbours: they share every word but one, and
the two words are used in the same places. The answers differ. A curated list of opposite pairs
(each side with its usual forms and a few same-side synonyms) marks which pole a text names; the
guard (semcache/guards.py) refuses a candidate when one text names one pole of a pair and the
other text names the other, neither naming both ("pros and cons" asks for both).

Plain string work: one precompiled expression per text, cached with the text's features.
"""

import re

# (one side, the other side): space-separated word forms; "_" joins a phrase's words.
_PAIRS = (
    ("positive positively positives", "negative negatively negatives"),
    ("pros advantage advantages benefit benefits upside upsides merit merits",
     "cons disadvantage disadvantages drawback drawbacks downside downsides demerit demerits"),
    ("maximize maximise maximizing maximising maximized maximised maximum maximal maximization",
     "minimize minimise minimizing minimising minimized minimised minimum minimal minimization"),
    ("increase increases increased increasing",
     "decrease decreases decreased decreasing reduce reduces reduced reducing reduction"),
    ("gain gains gaining gained", "lose loses losing loss"),
    ("win wins winning won winner winners victory", "lose loses losing lost loser losers defeat"),
    ("up upward upwards uphill upstairs", "down downward downwards downhill downstairs"),
    ("in_front_of", "behind"),
    ("before", "after"),
    ("above", "below"),
    ("buy buys buying bought buyer buyers purchase purchasing",
     "sell sells selling sold seller sellers"),
    ("import imports importing imported importer importers",
     "export exports exporting exported exporter exporters"),
    ("upload uploads uploading uploaded", "download downloads downloading downloaded"),
    ("input inputs", "output outputs"),
    ("inbound incoming", "outbound outgoing"),
    ("enable enables enabling enabled", "disable disables disabling disabled"),
    ("turn_on turns_on turning_on turned_on switch_on",
     "turn_off turns_off turning_off turned_off switch_off"),
    ("log_in login logging_in logged_in sign_in signin signing_in",
     "log_out logout logging_out logged_out sign_out signout signing_out"),
    # "in" / "out" alone is too common to be a pole; these verbs are where it flips the answer.
    ("zoom_in zooms_in zooming_in zoomed_in", "zoom_out zooms_out zooming_out zoomed_out"),
    ("check_in checks_in checking_in checked_in checkin",
     "check_out checks_out checking_out checked_out checkout"),
    ("opt_in opts_in opting_in opted_in", "opt_out opts_out opting_out opted_out"),
    ("scale_out scales_out scaling_out", "scale_in scales_in scaling_in"),
    ("plug_in plugging_in plugged_in", "unplug unplugging unplugged"),
    ("start starts starting started", "stop stops stopping stopped"),
    ("open opens opening opened", "close closes closing closed"),
    ("encrypt encrypts encrypting encrypted encryption",
     "decrypt decrypts decrypting decrypted decryption"),
    ("encode encodes encoding encoded encoder", "decode decodes decoding decoded decoder"),
    ("compress compresses compressing compressed compression",
     "decompress decompresses decompressing decompressed decompression"),
    ("install installs installing installed installation",
     "uninstall uninstalls uninstalling uninstalled"),
    ("add adds adding added", "remove removes removing removed delete deletes deleting deleted"),
    ("subscribe subscribed subscribing", "unsubscribe unsubscribed unsubscribing"),
    ("block blocks blocking blocked", "unblock unblocks unblocking unblocked"),
    ("lock locks locking locked", "unlock unlocks unlocking unlocked"),
    ("connect connects connecting connected", "disconnect disconnects disconnecting disconnected"),
    ("include includes including included", "exclude excludes excluding excluded"),
    ("allow allows allowing allowed permit permitted",
     "forbid forbids forbidden prohibit prohibits prohibited ban bans banned"),
    ("legal legally", "illegal illegally"),
    ("accept accepts accepting accepted", "reject rejects rejecting rejected"),
    ("agree agrees agreed agreeing", "disagree disagrees disagreed disagreeing"),
    ("success successful successfully succeed succeeds", "failure failures fail fails failed"),
    ("true", "false"),
    ("same", "different"),
    ("best", "worst"),
    ("most", "least"),
    ("more", "less fewer"),
    ("love loves loved loving", "hate hates hated hating"),
    ("happy happier happiest happiness", "sad sadder saddest sadness unhappy"),
    ("strength strengths strong stronger strongest",
     "weakness weaknesses weak weaker weakest"),
    ("friend friends", "enemy enemies"),
    ("rich richer richest wealthy", "poor poorer poorest"),
    ("high higher highest", "low lower lowest"),
    ("hot hotter hottest", "cold colder coldest"),
    ("long longer longest", "short shorter shortest"),
    ("fast faster fastest quick quicker quickest quickly", "slow slower slowest slowly"),
    ("big bigger biggest large larger largest", "small smaller smallest tiny"),
    ("cheap cheaper cheapest inexpensive", "expensive costly"),
    ("older oldest elder", "younger youngest"),
    ("early earlier earliest", "late"),
    ("past", "future"),
    ("inside", "outside"),
    ("indoor indoors", "outdoor outdoors"),
    ("internal", "external"),
    ("push pushes pushing pushed", "pull pulls pulling pulled"),
    ("forward forwards", "backward backwards"),
    ("ascending", "descending"),
    ("upgrade upgrades upgrading upgraded", "downgrade downgrades downgrading downgraded"),
    ("overweight", "underweight"),
    ("overrated", "underrated"),
    ("overestimate overestimated", "underestimate underestimated"),
    ("uppercase", "lowercase"),
    ("north northern", "south southern"),
    ("east eastern", "west western"),
    ("male males", "female females"),
    ("man men", "woman women"),
    ("boy boys", "girl girls"),
    ("boyfriend boyfriends", "girlfriend girlfriends"),
    ("husband husbands", "wife wives"),
    ("father fathers dad dads", "mother mothers mom moms mum mums"),
    ("son sons", "daughter daughters"),
    ("brother brothers", "sister sisters"),
    ("summer", "winter"),
    ("day daytime", "night nighttime"),
    ("sunrise", "sunset"),
    ("introvert introverts introverted", "extrovert extroverts extroverted"),
    ("employer employers", "employee employees"),
    ("teacher teachers", "student students"),
    ("landlord landlords", "tenant tenants"),
    ("borrow borrows borrowing borrowed", "lend lends lending lent"),
    ("send sends sending sent", "receive receives receiving received"),
    ("deposit deposits", "withdraw withdrawal withdrawals"),
    ("debit", "credit"),
    ("inhale", "exhale"),
    ("arrival arrive arrives arriving", "departure depart departs departing"),
    ("liberal liberals", "conservative conservatives"),
    ("democrat democrats", "republican republicans"),
    ("heaven", "hell"),
)

_POLE_OF: dict[str, frozenset] = {}
for _index, _sides in enumerate(_PAIRS):
    for _side, _forms in enumerate(_sides):
        for _form in _forms.split():
            _phrase = _form.replace("_", " ")
            # A form of two pairs ("lose": weight and games) names both.
            _POLE_OF[_phrase] = _POLE_OF.get(_phrase, frozenset()) | {(_index, _side)}
# Longest first, so phrases ("turn off") win over their words.
_POLES = re.compile(
    r"\b(?:" + "|".join(re.escape(f) for f in sorted(_POLE_OF, key=len, reverse=True)) + r")\b"
)


def poles(words: tuple[str, ...]) -> frozenset:
    """Return the (pair, side) poles named by a text's lower-cased words."""
    found: set = set()
    for match in _POLES.finditer(" ".join(words)):
        found |= _POLE_OF[match.group(0)]
    return frozenset(found)


def opposed(a: frozenset, b: frozenset) -> bool:
    """Return whether two texts' poles oppose: for some pair, one names only one side and the
    other only the other side."""
    for pair, side in a - b:
        if (pair, 1 - side) in b and (pair, 1 - side) not in a and (pair, side) not in b:
            return True
    return False
