#!/usr/bin/env python3
"""Generate tierforge's bundled synthetic corpus (public domain, CC0 1.0).

    python3 scripts/gen-corpus.py

Writes, deterministically (fixed seed, stdlib only, no network):

    data/samples.jsonl        900 listing samples (75% good, 25% with planted defects that fail
                              the project rubric; about 3% planted exact or near duplicates)
    data/feedback.jsonl       360 feedback events over October 2026
    data/eval-products.jsonl  48 held-out product inputs (brands and names unseen in samples)

Layout: attribute and phrase tables first, then the rubric checker that keeps the good
samples clean, then the generators, then main(). Rerunning gives byte-identical files.
"""

import html
import itertools
import json
import random
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

SEED = 20260901
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"

N_SAMPLES = 900
BAD_SHARE = 0.25          # share of samples with planted defects
N_EXACT_DUPS = 14         # exact copies (new id and timestamp)
N_NEAR_DUPS = 13          # same listing with a word or two changed
N_INFLATED = 45           # defective samples whose app scores say they are fine (about 5%)
FEEDBACK_SHARE = 0.40     # samples carrying an inline feedback object
N_FEEDBACK = 360
N_EVAL = 48
JACCARD_LIMIT = 0.5

# ---------------------------------------------------------------------------
# Attribute tables
# ---------------------------------------------------------------------------

BRANDS = {
    "Electronics": ["Voltaria", "Sonterra", "Lumora", "Kestrix", "Audiora", "Brightwave",
                    "Quantel", "Zentrix", "Helixon", "Corvana"],
    "Clothing": ["Threadhaven", "Fernhollow", "Loomwright", "Calder", "Brindle", "Ashgrove",
                 "Northmere", "Tallowby", "Sennick", "Maribelle"],
    "Home & Garden": ["Hearthly", "Greenvale", "Oakhaven", "Kitchara", "Brambleton", "Lanternly",
                      "Dovecote", "Willowmere", "Stonebrook", "Potterfield"],
    "Sports & Outdoors": ["Northpeak", "Trailforge", "Summitra", "Ridgewell", "Apexion",
                          "Crestline", "Velocore", "Pathwise", "Kinetra", "Ironvale"],
    "Automotive": ["Torqline", "Gearhaven", "Motivo", "Axlecraft", "Autovance", "Pistonix",
                   "Carwell", "Tracteon", "Ferrovia", "Shiftwell"],
    "Pet Supplies": ["Whiskerly", "Barkwell", "Pawtrail", "Kibblewood", "Snoutly", "Purrfield"],
}

# Held out: used only for eval-products.jsonl.
EVAL_BRANDS = {
    "Electronics": ["Ampliq", "Veltrex"],
    "Clothing": ["Quillon", "Everhart"],
    "Home & Garden": ["Mossbury", "Fenwood"],
    "Sports & Outdoors": ["Alpenrue", "Stridemark"],
    "Automotive": ["Camberline", "Wheelwright"],
    "Pet Supplies": ["Tailspring", "Fetchford"],
}

MODEL_WORDS = [
    "Aria", "Pulse", "Drift", "Halo", "Nova", "Summit", "Crest", "Vale", "Ridge", "Arc", "Flux",
    "Tide", "Ember", "Atlas", "Orbit", "Vista", "Cove", "Harbor", "Quill", "Slate", "Fable",
    "Juno", "Lyric", "Mesa", "Nimbus", "Onyx", "Prism", "Quest", "Rally", "Sable", "Terra",
    "Umber", "Vector", "Willow", "Zephyr", "Alto", "Beacon", "Cinder", "Dune", "Fjord", "Glade",
    "Haven", "Iris", "Kite", "Lumen", "Mako", "Nomad", "Opal", "Pike", "Rook", "Sierra",
    "Talon", "Verge", "Wren", "Yarrow", "Birch", "Cobalt", "Ferro", "Garnet", "Heron", "Indigo",
    "Juniper", "Kodiak", "Larch", "Marlin", "Nettle", "Osprey", "Pebble", "Quarry", "Rowan",
    "Sorrel", "Tundra", "Upland", "Vireo", "Wharf", "Alder", "Basalt", "Cedar", "Delta", "Estes",
    "Falcon", "Granite", "Hollow", "Inlet", "Jasper", "Kestrel", "Lagoon", "Meadow", "Northway",
    "Oasis", "Pioneer", "Ranger", "Solstice", "Thistle", "Voyager", "Wayline", "Cascade",
    "Bramble", "Canyon", "Compass", "Harlow", "Maple", "Mistral", "Ridgeback", "Scout",
]
MODEL_SUFFIXES = ["", "", "", "", "2", "3", "Lite", "Plus", "Air", "Go", "X", "Max", "S"]

# Held out: used only for eval products.
EVAL_MODEL_WORDS = ["Quasar", "Tempest", "Lodestar", "Gallant", "Sparrow", "Brisk", "Corsair",
                    "Dervish", "Equinox", "Fathom", "Gossamer", "Hearth", "Ironwood", "Jubilee",
                    "Kinship", "Lattice", "Monarch", "Nectar", "Outrider", "Paragon", "Quiver",
                    "Ramble", "Sundial", "Trellis", "Upstream", "Vantage", "Wildwood", "Zenith"]

MODELS_USED = ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "llama-3.1-8b-instruct",
               "mistral-small", "gemini-1.5-flash", "qwen2.5-7b-instruct"]
TONES = ["professional", "friendly", "technical", "luxury", "casual"]

COLOR_WORDS = ["black", "white", "gray", "grey", "blue", "red", "green", "yellow", "orange",
               "purple", "pink", "brown", "beige", "silver", "gold", "navy", "tan", "olive",
               "ivory", "cream", "charcoal", "khaki", "burgundy", "coral", "lavender", "sage"]


def T(name, head, plural=False, **vals):
    """A product type: display name (may hold {placeholders}), head noun, grammatical number,
    and per-type value overrides."""
    return {"name": name, "head": head, "plural": plural, "vals": vals}


def F(raw, fmt, n, say, only=None, bit=None):
    """A feature: terse raw input variants, formatted bullet variants, a noun phrase for
    intros, description sentence variants, the type indices it applies to (None: all), and an
    optional title attribute."""
    as_list = lambda x: [x] if isinstance(x, str) else list(x)
    return {"raw": as_list(raw), "fmt": as_list(fmt), "n": n, "say": as_list(say),
            "only": only, "bit": bit}


def _power_bank(v):
    cap = v["cap"]
    v["charges"] = {"5,000": "one", "10,000": "two", "15,000": "three", "20,000": "four",
                    "26,800": "five"}[cap]
    v["wh"] = {"5,000": "18.5", "10,000": "37", "15,000": "55.5", "20,000": "74",
               "26,800": "99"}[cap]
    v["ports_w"] = {2: "Two", 3: "Three", 4: "Four"}[v["ports"]]
    v["g"] = {"5,000": 120, "10,000": 190, "15,000": 260, "20,000": 360, "26,800": 480}[cap]
    if cap == "5,000":
        v["w"] = 20


def _led(v):
    # color temperature follows the light color
    v["k"] = {"Warm White": 3000, "Ice Blue": 8000}.get(v["color"], v["k"])


def _keyboard(v):
    v["layout"] = {68: "compact", 75: "compact", 84: "compact", 87: "tenkeyless",
                   98: "space-saving full", 104: "full-size"}[v["keys"]]


def _pet_bed(v):
    v["dims"] = {"Small": "24 x 18", "Medium": "30 x 20", "Large": "36 x 27",
                 "Extra Large": "42 x 30"}[v["size"]]


def _collar(v):
    v["neck"] = {"Small": "10 to 14", "Medium": "14 to 18", "Large": "18 to 24"}[v["size"]]
    v["chest"] = {"Small": "16 to 22", "Medium": "22 to 30", "Large": "28 to 38"}[v["size"]]


# Each sub-category: product types, attribute values, features, and per-category phrase pools.
SUBCATS = {
    # ------------------------------------------------------------------ Electronics
    "Electronics > Headphones": {
        "types": [T("Wireless Over-Ear Headphones", "Headphones", True),
                  T("Noise Cancelling Headphones", "Headphones", True),
                  T("Bluetooth On-Ear Headphones", "Headphones", True)],
        "vals": {"h": [30, 35, 40, 45, 50, 60, 70], "bt": ["5.2", "5.3", "5.4"],
                 "mm": [32, 40, 45, 50], "ch": [10, 15], "g": [210, 240, 250, 265, 280],
                 "mics": ["four", "six", "eight"],
                 "color": ["Graphite Black", "Arctic White", "Slate Blue", "Sage Green",
                           "Sandstone Beige", "Midnight Navy"]},
        "feats": [
            F(["{h}h battery", "{h} hr battery"], "Up to {h} hours of playback on a single charge",
              "up to {h} hours of battery life",
              ["A full charge gives up to {h} hours of listening, so a week of commutes rarely needs a cable.",
               "Battery life reaches {h} hours per charge, which covers long-haul flights with room to spare.",
               "{It} run{s} for up to {h} hours between charges, even with noise cancelling switched on."],
              bit="{h}-Hour Battery"),
            F(["usb-c fast charge", "fast charging {ch}min"],
              "USB-C fast charging: {ch} minutes adds about 5 hours of play", "USB-C fast charging",
              ["When the battery runs low, {ch} minutes on a USB-C cable adds roughly five hours of playback.",
               "Quick charging is easy: a {ch}-minute session over USB-C brings back about five hours."]),
            F(["bluetooth {bt}", "bt {bt}"], "Bluetooth {bt} for a stable, low-latency connection",
              "Bluetooth {bt}",
              ["Bluetooth {bt} keeps the link steady across a room and trims lag when watching video.",
               "The Bluetooth {bt} radio holds a clean connection to phones, tablets and laptops."],
              bit="Bluetooth {bt}"),
            F(["anc", "active noise cancelling"],
              ["Active noise cancelling softens engine and traffic hum",
               "Hybrid active noise cancelling with {mics} microphones"],
              "active noise cancelling",
              ["Active noise cancelling uses {mics} microphones to soften the drone of engines, air vents and traffic.",
               "Switch on noise cancelling and the low rumble of trains and office air handling fades into the background."],
              bit="Active Noise Cancelling"),
            F(["{mm}mm drivers", "{mm} mm driver"], "Dynamic {mm} mm drivers with a balanced sound profile",
              "{mm} mm dynamic drivers",
              ["Inside each ear cup, {mm} mm dynamic drivers produce full, controlled bass and clear vocals.",
               "The {mm} mm drivers are tuned for a balanced profile, so podcasts sound natural and music keeps its detail."],
              bit="{mm}mm Drivers"),
            F(["memory foam cushions", "memory foam pads"],
              "Memory foam ear cushions wrapped in soft protein leather", "memory foam ear cushions",
              ["Memory foam ear cushions wrapped in soft protein leather spread pressure evenly for long sessions.",
               "The cushions use slow-rebound memory foam that settles around the ears without pinching glasses."]),
            F(["foldable", "foldable w/ case"], "Folding design with a hard-shell carry case",
              "a folding design",
              ["The ear cups swivel flat and fold inward, and the included hard-shell case keeps them protected in a bag.",
               "When the trip is over, the headband folds down to fit the slim hard-shell case."]),
            F(["multipoint", "multipoint pairing"], "Multipoint pairing with two devices at once",
              "multipoint pairing",
              ["Multipoint pairing keeps a laptop and a phone connected at the same time, switching to whichever one starts playing.",
               "With multipoint pairing, a call on the phone can interrupt music from the laptop without pairing again."]),
            F(["{g}g", "weight {g}g"], "Lightweight {g} g build with a padded headband",
              "a lightweight {g} g build",
              ["At {g} grams with a padded, adjustable headband, {it} stay{s} comfortable through a full working day.",
               "The frame weighs just {g} grams, and the padded headband spreads that weight so long sessions never feel heavy."]),
            F(["3.5mm aux", "aux cable"], "Includes a 3.5 mm audio cable for wired listening",
              "a 3.5 mm wired option",
              ["A 3.5 mm cable comes in the box for wired listening on in-flight systems or when the battery is empty.",
               "For older in-flight entertainment systems, the included 3.5 mm cable plugs straight in, no battery needed."]),
            F(["ambient mode", "transparency mode"], "Ambient mode lets voices and announcements through",
              "an ambient listening mode",
              ["Ambient mode lets voices and station announcements through with a single press on the left ear cup.",
               "A tap on the ear cup switches to ambient mode, so a quick conversation does not mean taking {obj} off."]),
        ],
        "hooks": ["Good headphones should disappear once the music starts, and that idea shapes every part of this design.",
                  "Long listening sessions demand comfort as much as sound, and this pair balances both.",
                  "From a morning train to an afternoon of video calls, a reliable pair of headphones does a lot of quiet work.",
                  "Sound, comfort and battery life decide whether a pair of headphones gets used every day."],
        "uses": ["daily commutes", "long flights", "focused work sessions", "evening music listening",
                 "video calls", "study sessions at the library"],
        "aud": ["frequent travelers", "remote workers", "students", "music listeners who value detail",
                "commuters"],
        "care": ["Wipe the ear cushions with a dry, soft cloth after use and store {obj} in the case to protect the headband.",
                 "Keep the firmware current through the companion app to get the latest tuning presets.",
                 "Avoid leaving {obj} on a car dashboard or near a heater, since heat is hard on batteries and foam."],
    },
    "Electronics > Portable Speakers": {
        "types": [T("Portable Bluetooth Speaker", "Speaker"), T("Waterproof Outdoor Speaker", "Speaker"),
                  T("Compact Wireless Speaker", "Speaker")],
        "vals": {"w": [10, 14, 20, 24, 30, 40], "h": [12, 15, 18, 20, 24, 30],
                 "ip": ["IPX5", "IPX7", "IP67"], "bt": ["5.1", "5.3", "5.4"],
                 "g": [320, 410, 540, 680, 790], "ft": [60, 80, 100, 120],
                 "color": ["Charcoal Gray", "Ocean Blue", "Coral Red", "Forest Green", "Sand Beige",
                           "Matte Black", "Slate Gray"]},
        "feats": [
            F(["{w}w output", "{w}w stereo"],
              ["Stereo {w} W output with dual passive radiators", "Stereo sound from a {w} W amplifier"],
              "{w} watts of stereo output",
              ["Two full-range drivers and a pair of passive radiators turn {w} watts into sound that fills a patio or a small living room.",
               "A {w} W amplifier gives the drivers enough headroom to stay clean when the volume goes up.",
               "With {w} watts on tap, {ref} project{s} clear vocals and tight low end without distorting at higher levels."],
              bit="{w}W Stereo Sound"),
            F(["{h}h playtime", "{h} hr battery"], "Up to {h} hours of playtime at moderate volume",
              "up to {h} hours of playtime",
              ["The built-in battery plays for up to {h} hours at moderate volume, so a full afternoon outdoors needs no outlet.",
               "Expect around {h} hours of music per charge, depending on volume and bass settings."],
              bit="{h}-Hour Playtime"),
            F(["{ip}", "{ip} waterproof"], "{ip} protection against rain, splashes and dust",
              "{ip} water resistance",
              ["{ip} protection means rain showers, pool splashes and beach sand are part of the plan rather than a worry.",
               "Sealed ports and an {ip} rating let {obj} sit by the pool or ride along in a kayak."],
              bit="{ip} Waterproof"),
            F(["stereo pair", "pairs w/ 2nd speaker"], "Pairs with a second unit for true stereo sound",
              "stereo pairing",
              ["Link two units together and each one takes a channel, spreading the sound across a wider space.",
               "A second speaker can join after a quick pairing step for left and right stereo at parties."]),
            F(["mic/speakerphone", "built-in mic"], "Built-in microphone for speakerphone calls",
              "a built-in speakerphone",
              ["A built-in microphone turns {obj} into a speakerphone for calls around the table.",
               "Calls can be answered from the speaker itself, with the microphone picking up voices across a desk."]),
            F(["carry strap", "rugged shell"], "Rubberized shell with a sturdy carry strap",
              "a rubberized shell",
              ["The rubberized shell absorbs bumps, and a sturdy strap clips onto a backpack or a bike handlebar.",
               "A woven carry strap and a grippy rubber shell make it easy to hang from a tent loop or a branch."]),
            F(["usb-c charge", "usb-c charging"], "USB-C charging in about 3 hours", "USB-C charging",
              ["Charging runs over USB-C and takes about three hours from empty, so the same cable as a phone does the job.",
               "A USB-C port handles charging, and about three hours brings the battery from empty to full."]),
            F(["{g}g", "{g} grams"], "Compact {g} g body fits a bag side pocket", "a compact {g} g body",
              ["At {g} grams, {it} slip{s} into a side pocket or a bike bottle cage without adding much weight.",
               "Weighing {g} grams, {ref} travel{s} as easily as a water bottle."]),
            F(["app eq", "custom eq"], "Custom EQ presets through the companion app",
              "adjustable EQ presets",
              ["The companion app includes EQ presets for podcasts, outdoor listening and bass-heavy playlists, plus a custom curve.",
               "Tone can be tuned in the companion app, with presets for voice, open-air listening and heavier bass."]),
            F(["bt {bt}, {ft}ft range", "bluetooth {bt}"], "Bluetooth {bt} with a range of up to {ft} feet",
              "Bluetooth {bt}",
              ["Bluetooth {bt} holds a steady link up to {ft} feet away in open space, so the phone can stay in a pocket.",
               "With Bluetooth {bt} and a range of about {ft} feet outdoors, music keeps playing while the phone stays at the picnic table."],
              bit="Bluetooth {bt}"),
        ],
        "hooks": ["Music sounds different outdoors, and a speaker that travels well changes how often it gets played.",
                  "A portable speaker earns its place by being easy to carry, quick to connect and tough enough for the outdoors.",
                  "Backyard evenings, picnics and weekend trips all go better with a soundtrack that does not depend on a wall outlet.",
                  "Small speakers often sound thin, so this design puts real effort into drivers, tuning and enclosure."],
        "uses": ["backyard gatherings", "beach days", "camping weekends", "kitchen playlists",
                 "poolside afternoons", "picnics in the park"],
        "aud": ["outdoor enthusiasts", "students in shared apartments", "anyone who hosts friends at home",
                "hikers and campers", "families on the go"],
        "care": ["Rinse off sand or salt water with fresh water and let {obj} air dry with the port cover closed.",
                 "Close the charging port cover before any water exposure to keep the seal effective.",
                 "For long storage, charge the battery to about half and keep {obj} in a cool, dry place."],
    },
    "Electronics > Power Banks": {
        "types": [T("Portable Power Bank", "Power Bank"), T("Slim Power Bank", "Power Bank"),
                  T("Magnetic Wireless Power Bank", "Power Bank")],
        "vals": {"cap": ["5,000", "10,000", "15,000", "20,000", "26,800"], "w": [20, 22.5, 30, 45, 65],
                 "ports": [2, 3, 4], "g": [120, 180, 240, 360, 480],
                 "color": ["Space Gray", "Midnight Black", "Pearl White", "Sky Blue", "Sage Green"]},
        "derive": _power_bank,
        "feats": [
            F(["{cap}mah", "{cap} mah capacity"], "Capacity of {cap} mAh, about {charges} full phone charges",
              "a {cap} mAh cell",
              ["The {cap} mAh cell stores enough energy for about {charges} full phone charges, depending on the handset.",
               "With {cap} mAh on board, {ref} can recharge a typical smartphone about {charges} times before it needs the wall itself."],
              bit="{cap} mAh"),
            F(["{w}w pd", "usb-c {w}w"], "USB-C PD output of {w} W for phones, tablets and handhelds",
              "{w} W USB-C PD output",
              ["The USB-C port supports PD charging at up to {w} W, bringing a compatible phone to roughly half charge in about 30 minutes.",
               "Up to {w} W flows through the USB-C PD port, so phones and tablets charge at their full wired speed."],
              bit="{w}W USB-C Output"),
            F(["{ports} ports", "{ports} outputs"], "Charges up to {ports} devices at the same time",
              "{ports} output ports",
              ["{ports_w} outputs run at the same time, so a phone and a pair of earbuds can charge together.",
               "Up to {ports} devices can draw power at once, and the bank balances output between them automatically."],
              bit="{ports} Ports"),
            F(["led display", "digital display"], "Digital display shows the exact remaining charge",
              "a digital charge display",
              ["A small digital display shows the remaining charge as a number, so there is no guessing from indicator dots.",
               "The digital readout counts remaining charge down to the single digit, which makes planning the day easier."]),
            F(["pass-through", "passthrough charging"], "Pass-through charging for overnight use",
              "pass-through charging",
              ["Pass-through charging lets the bank and a connected phone charge together from one wall adapter overnight.",
               "Plug the bank into the wall with a phone attached and both charge overnight from a single outlet."]),
            F(["carry-on ok", "{wh}wh"], "Travel-friendly {wh} Wh rating for carry-on bags",
              "a carry-on friendly {wh} Wh rating",
              ["At {wh} Wh, the cell sits under the common 100 Wh limit for carry-on luggage.",
               "Its {wh} Wh rating keeps it below the 100 Wh threshold that most airlines apply to cabin bags."]),
            F(["alu shell", "aluminum body"], "Aluminum shell with a soft matte finish", "an aluminum shell",
              ["The aluminum shell resists scuffs and stays cool to the touch during fast charging.",
               "An aluminum housing spreads heat during fast charging and shrugs off the scrapes of daily carry."]),
            F(["braided cable", "cable incl"], "Braided USB-C cable in the box", "a braided USB-C cable",
              ["A braided USB-C cable comes in the box, so the bank is ready to use straight away.",
               "The box includes a braided USB-C cable that holds up to being coiled and stuffed into bags."]),
            F(["{g}g", "{g} grams"], "Pocketable {g} g body with rounded edges", "a {g} g body",
              ["Weighing {g} grams, {it} ride{s} along in a jacket pocket or a small crossbody bag.",
               "At {g} grams, {ref} disappear{s} into a backpack pocket until the moment it is needed."]),
            F(["temp ctrl", "smart protection"], "Built-in protection against overcharging and overheating",
              "multi-layer circuit protection",
              ["Circuit protection monitors temperature, current and voltage and cuts power if anything drifts out of range.",
               "Built-in safeguards watch temperature and current, stepping in before a cable or device can overheat."]),
            F(["magnetic 15w wireless", "magsafe style"], "Magnetic wireless charging at up to 15 W",
              "magnetic wireless charging",
              ["Magnets align {ref} with compatible phones, and wireless charging runs at up to 15 W while the phone stays in use.",
               "A magnetic ring snaps the bank to the back of compatible phones and charges wirelessly at up to 15 W."],
              only=(2,), bit="15W Magnetic Wireless"),
        ],
        "hooks": ["A phone that dies halfway through the day is more than an inconvenience, and a reliable power bank solves it quietly.",
                  "Travel days, festivals and long meetings all drain batteries faster than expected.",
                  "Portable power is only useful if it is actually carried, which is why size and weight matter as much as capacity.",
                  "Modern devices charge over USB-C, and a good power bank should make the most of that standard."],
        "uses": ["travel days", "long commutes", "music festivals", "conference trips", "camping weekends",
                 "power outages at home"],
        "aud": ["frequent flyers", "students", "remote workers", "photographers on location",
                "anyone who relies on a phone for navigation"],
        "care": ["Recharge the bank every few months during storage to keep the cell healthy.",
                 "Keep {obj} out of hot cars and direct sun, as heat shortens battery life.",
                 "Use a USB-C wall adapter of {w} W or more for the quickest recharge."],
    },
    "Electronics > Keyboards": {
        "types": [T("Mechanical Keyboard", "Keyboard"), T("Wireless Mechanical Keyboard", "Keyboard"),
                  T("Compact Gaming Keyboard", "Keyboard", keys=[68, 75, 84])],
        "vals": {"keys": [68, 75, 84, 87, 98, 104],
                 "sw": ["Linear Red", "Tactile Brown", "Clicky Blue", "Silent Linear", "Linear Yellow"],
                 "kc": ["PBT", "double-shot PBT", "double-shot ABS"], "mah": [3000, 4000, 5000],
                 "hb": [90, 120, 200, 300],
                 "color": ["Frost White", "Charcoal Black", "Lavender Gray", "Olive Green", "Navy Blue"]},
        "derive": _keyboard,
        "feats": [
            F(["hot-swap", "hotswap pcb"], "Hot-swappable sockets for 3-pin and 5-pin switches",
              "hot-swappable switch sockets",
              ["Hot-swappable sockets accept both 3-pin and 5-pin switches, so changing the feel takes minutes and no soldering.",
               "Every switch can be pulled and replaced with the included tool, which makes experimenting with new switches easy."],
              bit="Hot-Swappable"),
            F(["{sw_l} switches", "{sw_l} sw"], "Factory-lubed {sw} switches for a smooth keystroke",
              "factory-lubed {sw} switches",
              ["Factory-lubed {sw} switches give a smooth, consistent keystroke from the first day.",
               "The {sw} switches come lubricated from the factory, which removes scratchiness and evens out the feel."],
              bit="{sw} Switches"),
            F(["{kc} keycaps", "{kc} caps"], "Durable {kc} keycaps that resist shine", "{kc} keycaps",
              ["{kc} keycaps hold their texture and resist the shine that builds up on heavily used keys.",
               "The legends on the {kc} keycaps are molded in, so they will not fade with use."]),
            F(["gasket mount", "gasket mounted"], "Gasket-mounted plate for a softer, quieter typing feel",
              "a gasket-mounted plate",
              ["A gasket-mounted plate floats between silicone strips, softening each keystroke and muting harsh pings.",
               "The plate sits on soft gaskets rather than screws, which gives each press a slight cushion and a rounder sound."]),
            F(["tri-mode", "2.4g + bt + wired"], "Connects by 2.4 GHz receiver, Bluetooth or USB-C cable",
              "three connection modes",
              ["Three connection modes cover every setup: a 2.4 GHz receiver for low latency, Bluetooth for tablets, and a USB-C cable for wired use.",
               "Switching between the 2.4 GHz receiver, Bluetooth and a wired USB-C connection takes a single key combination."],
              only=(1,), bit="Tri-Mode Wireless"),
            F(["{mah}mah battery", "{mah} mah"], "Built-in {mah} mAh battery, up to {hb} hours with lighting off",
              "a {mah} mAh battery",
              ["The {mah} mAh battery lasts up to {hb} hours with the backlight off, so charging becomes an occasional task.",
               "With lighting switched off, the {mah} mAh cell keeps going for up to {hb} hours between charges."],
              only=(1,)),
            F(["rgb", "per-key rgb"], "Per-key RGB backlighting with adjustable effects", "per-key RGB lighting",
              ["Per-key RGB backlighting can be set to a single calm color or an animated effect, with brightness in several steps.",
               "Each key has its own RGB light, so layouts can be color-coded by function or dimmed to a soft glow."],
              bit="RGB Backlit"),
            F(["mac/win", "mac + windows"], "Switchable Mac and Windows layouts", "Mac and Windows layouts",
              ["A toggle switches between Mac and Windows layouts, and the box includes swap keycaps for both systems.",
               "Mac and Windows users are both covered, with a layout switch and extra keycaps for the modifier row."]),
            F(["sound foam", "dampening foam"], "Sound-dampening foam layers inside the case",
              "sound-dampening foam",
              ["Layers of foam inside the case fill the empty space and give keystrokes a deeper, less hollow sound.",
               "Internal foam damping removes the hollow ring that many boards have, leaving a muted, even typing sound."]),
            F(["{keys} keys", "{keys}-key"], "{layout} {keys}-key layout with dedicated arrow keys",
              "a {layout} {keys}-key layout",
              ["The {layout} {keys}-key layout keeps the arrow keys and essential navigation while leaving more room for the mouse.",
               "A {layout} arrangement of {keys} keys covers daily shortcuts without crowding the desk."],
              bit="{keys} Keys"),
            F(["adj feet", "fold-out feet"], "Two-stage fold-out feet for three typing angles", "fold-out feet",
              ["Two-stage fold-out feet give three typing angles, and rubber pads keep the board planted on the desk.",
               "Fold-out feet set the board flat or at one of two raised angles, and rubber pads stop it from sliding."]),
            F(["1000hz polling", "1000 hz"], "Polling rate of 1000 Hz for responsive input", "a 1000 Hz polling rate",
              ["A 1000 Hz polling rate reports each keypress with minimal delay, which helps in fast-paced games.",
               "The board polls at 1000 Hz, so every keystroke reaches the computer within a millisecond."],
              only=(0, 2)),
        ],
        "hooks": ["A keyboard is the tool most people touch more than any other in a day, so feel and sound deserve attention.",
                  "Mechanical switches bring a precision and consistency that membrane boards struggle to match.",
                  "Typing comfort comes from many small details, from the plate and switches to the keycaps and case.",
                  "Whether the work is code, spreadsheets or long-form writing, a good keyboard makes the hours feel shorter."],
        "uses": ["long writing sessions", "programming work", "evening gaming", "spreadsheet-heavy days",
                 "home office setups", "shared desks"],
        "aud": ["programmers", "writers", "gamers", "keyboard hobbyists", "remote workers"],
        "care": ["Remove keycaps every few months with the included puller and clear dust with a soft brush.",
                 "Wipe the keycaps with a slightly damp cloth and let the board dry fully before use.",
                 "Keep drinks on a coaster away from the board, since liquid can reach the switch contacts."],
    },
    # ------------------------------------------------------------------ Clothing
    "Clothing > Jackets": {
        "types": [T("{gender} Waterproof Rain Jacket", "Jacket"), T("{gender} Packable Rain Jacket", "Jacket"),
                  T("{gender} Insulated Puffer Jacket", "Jacket"), T("{gender} Softshell Jacket", "Jacket")],
        "vals": {"gender": ["Men's", "Women's"], "size": ["XS", "S", "M", "L", "XL", "XXL"],
                 "wp": ["10,000", "15,000", "20,000"], "gsm": [60, 80, 100, 120],
                 "g": [240, 280, 320, 380, 450, 520],
                 "color": ["Olive Green", "Navy Blue", "Charcoal Gray", "Rust Orange", "Black",
                           "Forest Green", "Stone Beige"]},
        "bits": ["Size {size}"],
        "raw_extra": ["size {size_l}"],
        "feats": [
            F(["{wp}mm waterproof", "waterproof {wp}mm"], "Waterproof to {wp} mm with fully taped seams",
              "a {wp} mm waterproof membrane",
              ["A {wp} mm waterproof membrane and fully taped seams keep steady rain on the outside.",
               "The shell holds back rain to a {wp} mm rating, and every seam is taped so water cannot creep through the stitching."],
              only=(0, 1), bit="{wp} mm Waterproof"),
            F(["breathable", "breathable membrane"], "Breathable fabric that lets moisture vapor escape",
              "a breathable face fabric",
              ["The fabric lets moisture vapor escape during brisk walks, reducing that clammy feeling under a shell.",
               "Breathable fabric vents warmth and sweat vapor on the move, keeping the inside drier on long climbs."],
              only=(0, 1, 3)),
            F(["adj hood", "adjustable hood"], "Adjustable hood with a stiffened brim", "an adjustable hood",
              ["An adjustable hood with a stiffened brim stays in place in the wind and keeps rain off the face.",
               "Pull cords at the back and sides shape the hood around the head, so it turns with the wearer instead of blocking the view."]),
            F(["packs into pocket", "packable"], "Packs into its own chest pocket", "a pack-away design",
              ["When the clouds clear, the whole jacket stuffs into its own chest pocket and clips to a harness loop.",
               "Packed into its own pocket, the jacket shrinks to roughly the size of a water bottle."],
              only=(1,), bit="Packable"),
            F(["pit zips", "underarm vents"], "Underarm zips for quick ventilation", "underarm vents",
              ["Underarm zips open wide for airflow on uphill stretches, then close again when the wind picks up.",
               "Long underarm zips dump heat quickly without taking the jacket off."],
              only=(0, 1)),
            F(["{gsm}g synthetic fill", "{gsm}g insulation"], "Synthetic insulation, {gsm} g per square meter",
              "{gsm} g synthetic insulation",
              ["Synthetic insulation at {gsm} g per square meter traps warmth and keeps insulating even when damp.",
               "The {gsm} g synthetic fill lofts quickly after being compressed and holds heat on cold, wet days."],
              only=(2,), bit="{gsm}g Insulation"),
            F(["baffled", "box quilted"], "Box-quilted baffles keep the fill evenly spread", "box-quilted baffles",
              ["Box-quilted baffles keep the fill evenly spread, so there are no cold spots along the stitch lines.",
               "Box baffles hold the insulation in place, so warmth stays even across the chest and back."],
              only=(2,)),
            F(["fleece-lined pockets", "fleece pockets"], "Fleece-lined hand pockets with zip closures",
              "fleece-lined hand pockets",
              ["Zippered hand pockets are lined with soft fleece, a small comfort on frosty mornings.",
               "Soft fleece lines the zip hand pockets, which keeps cold fingers comfortable on winter walks."],
              only=(2, 3)),
            F(["4-way stretch", "stretch fabric"], "Four-way stretch softshell fabric", "four-way stretch fabric",
              ["Four-way stretch fabric moves with the body, which matters when scrambling over rocks or reaching overhead.",
               "The softshell stretches in every direction, so reaching, climbing and cycling never feel restricted."],
              only=(3,)),
            F(["wind resistant", "windproof-ish"], "Wind-resistant, water-repellent face fabric",
              "a wind-resistant face fabric",
              ["A tightly woven face fabric blocks gusts and sheds light showers with a durable water-repellent finish.",
               "Wind gets stopped at the surface by a dense weave, and a water-repellent finish beads off drizzle."],
              only=(3,)),
            F(["{g}g", "weighs {g}g"], "Lightweight at {g} g", "a {g} g weight",
              ["At {g} grams, {it} add{s} almost nothing to a daypack or a tote.",
               "The whole jacket weighs about {g} grams, light enough to carry on days that only might turn wet."]),
            F(["hem drawcord", "adj cuffs"], "Adjustable drawcord hem and hook-and-loop cuffs",
              "adjustable cuffs and hem",
              ["Hook-and-loop cuffs and a drawcord hem seal out drafts and let the fit be tuned over different layers.",
               "Adjustable cuffs and a cinchable hem close gaps against cold air, over a T-shirt or a thick fleece."]),
            F(["reflective", "reflective print"], "Reflective details for visibility at dusk", "reflective details",
              ["Reflective prints on the back and sleeves catch headlights on evening walks.",
               "Small reflective details add visibility when walking home along unlit streets."]),
        ],
        "hooks": ["Weather rarely checks the calendar, so a jacket that handles a surprise change is worth keeping close.",
                  "A good jacket earns its place on the hook by the door through comfort, protection and a fit that works over other layers.",
                  "The right outer layer makes a cold or wet day feel like any other day.",
                  "Outerwear works hardest when it is forgotten about, keeping the weather out while the wearer gets on with the day."],
        "uses": [("rainy commutes", (0, 1, 3)), ("weekend hikes", None), ("dog walks", None), ("city travel", None),
                 ("morning school drop-offs", None), ("festival weekends", (0, 1)), ("winter commutes", (2,)),
                 ("ski town weekends", (2,)), ("trail runs in cool weather", (3,))],
        "aud": ["walkers", "commuters", "hikers", "travelers who pack light", "parents on the school run"],
        "care": ["Machine wash cold on a gentle cycle, close all zips first, and tumble dry low to refresh the water-repellent finish.",
                 "Skip fabric softener, which can clog the fabric and reduce its water repellency.",
                 "Hang {obj} to dry away from direct heat before storing."],
    },
    "Clothing > T-Shirts": {
        "types": [T("{gender} Crew Neck T-Shirt", "T-Shirt"), T("{gender} Heavyweight Cotton T-Shirt", "T-Shirt",
                                                                gsm=[200, 220, 240]),
                  T("{gender} Performance Running T-Shirt", "T-Shirt"), T("{gender} V-Neck T-Shirt", "T-Shirt")],
        "vals": {"gender": ["Men's", "Women's"], "size": ["XS", "S", "M", "L", "XL", "XXL"],
                 "gsm": [140, 160, 180], "fit": ["regular", "relaxed", "athletic"],
                 "color": ["Heather Gray", "White", "Black", "Navy Blue", "Sage Green", "Burgundy Red",
                           "Sand Beige"]},
        "bits": ["Size {size}"],
        "raw_extra": ["size {size_l}"],
        "feats": [
            F(["{gsm}gsm cotton", "{gsm} gsm jersey"], "Soft cotton jersey at {gsm} g per square meter",
              "{gsm} GSM cotton jersey",
              ["The {gsm} GSM cotton jersey has a soft hand and enough body to hang neatly rather than cling.",
               "Knitted from {gsm} GSM cotton, the fabric feels substantial without being stiff."],
              only=(0, 1, 3), bit="{gsm} GSM Cotton"),
            F(["combed ringspun", "ring-spun"], "Combed ring-spun yarn for a smooth surface",
              "combed ring-spun yarn",
              ["Combed ring-spun yarn removes short fibers, leaving a smoother surface that resists pilling.",
               "The yarn is combed and ring-spun, giving the fabric a smooth, even face that feels soft from the first wear."],
              only=(0, 1, 3)),
            F(["moisture wicking", "quick dry"], "Moisture-wicking knit that dries quickly", "a quick-drying knit",
              ["A moisture-wicking polyester knit pulls sweat away from the skin and dries fast between intervals.",
               "The technical knit moves moisture to the outer surface, where it evaporates before the next lap."],
              only=(2,), bit="Quick-Dry"),
            F(["flatlock seams", "flat seams"], "Flatlock seams to reduce chafing", "flatlock seams",
              ["Flatlock seams lie flat against the skin, reducing rubbing on long runs.",
               "Seams are flatlocked so there are no raised edges under a pack strap or along the sides."], only=(2,)),
            F(["mesh panels", "mesh back"], "Breathable mesh panels across the back", "mesh back panels",
              ["Mesh panels across the upper back let heat escape when the pace picks up.",
               "A mesh yoke across the shoulders releases heat where runners tend to warm up first."], only=(2,)),
            F(["preshrunk", "pre-shrunk"], "Pre-shrunk to hold its size after washing", "pre-shrunk fabric",
              ["The fabric is pre-shrunk, so the fit out of the package is the fit after many washes.",
               "Because the cotton is pre-shrunk, the length and chest measurements stay true through regular laundry."]),
            F(["taped neck", "ribbed collar"], "Shoulder-to-shoulder taping and a ribbed collar", "a ribbed collar",
              ["A ribbed collar and shoulder-to-shoulder taping help the neckline keep its shape instead of stretching out.",
               "The neckline is finished with a firm rib and taped across the shoulders, so it stays neat rather than wavy."],
              only=(0, 1, 3)),
            F(["tagless", "printed label"], "Tagless neck label for comfort", "a tagless neck label",
              ["The care information is printed inside, so there is no tag to scratch the back of the neck.",
               "A printed label replaces the usual neck tag, so nothing itches under a collar or a backpack strap."]),
            F(["{fit} fit", "fit: {fit}"], "{fit} fit with a straight hem", "a {fit} fit",
              ["The {fit} fit sits easily at the shoulders and falls to a straight hem that works tucked or untucked.",
               "Cut in a {fit} fit, the shirt layers under an overshirt or works on its own with jeans."]),
            F(["reflective logo", "reflective"], "Reflective logo for low-light runs", "a reflective logo",
              ["A reflective logo on the chest and back adds visibility on early morning or evening runs.",
               "Reflective branding front and back picks up headlights when runs start before sunrise."],
              only=(2,)),
        ],
        "hooks": ["A T-shirt is the most worn item in most wardrobes, which is exactly why fabric and fit matter.",
                  "The everyday T-shirt looks simple, but the difference between a good one and a forgettable one is in the details.",
                  "Basics work hardest when they hold their shape and color wash after wash."],
        "uses": [("everyday wear", (0, 1, 3)), ("layering under a jacket", (0, 1, 3)), ("weekend errands", None),
                 ("gym sessions", (2,)), ("casual Fridays at the office", (0, 1, 3)), ("travel days", None),
                 ("tempo runs", (2,)), ("race days", (2,))],
        "aud": [("anyone building a capsule wardrobe", (0, 1, 3)), ("runners", (2,)), ("students", None),
                ("people who value simple, durable basics", (0, 1, 3)), ("travelers", None), ("gym regulars", (2,))],
        "care": ["Machine wash cold with similar colors and tumble dry low to keep the fit consistent.",
                 "Turn {obj} inside out before washing to protect the color and surface.",
                 "Line drying extends the life of the fabric."],
    },
    "Clothing > Socks": {
        "types": [T("Merino Wool Hiking Socks", "Socks", True), T("Cushioned Crew Socks", "Socks", True),
                  T("Ankle Running Socks", "Socks", True), T("Cotton Dress Socks", "Socks", True)],
        "vals": {"pack": [3, 4, 5, 6, 8, 10, 12], "size": ["S", "M", "L", "XL"],
                 "color": ["Charcoal Gray", "Black", "Navy Blue", "Heather Brown", "White", "Olive Green",
                           "Mixed Gray and Blue"]},
        "bits": ["{pack} Pairs", "Size {size}"],
        "raw_extra": ["{pack} pairs", "size {size_l}"],
        "feats": [
            F(["merino blend", "merino wool"], "Merino wool blend that regulates temperature",
              "a merino wool blend",
              ["A merino wool blend keeps feet warm on cold mornings and comfortable as the day warms up.",
               "Merino fibers manage moisture well, so the socks stay comfortable over multi-day trips."],
              only=(0,)),
            F(["full cushion", "terry cushion"], "Full terry cushioning underfoot", "full terry cushioning",
              ["Full terry cushioning under the foot softens every step on rocky trails and hard pavement.",
               "The whole footbed is knit with terry loops, adding a soft layer between the foot and the shoe."],
              only=(0, 1)),
            F(["light cushion", "zoned cushion"], "Light cushioning at the heel and forefoot", "zoned cushioning",
              ["Light cushioning sits at the heel and forefoot where impact is highest, keeping the rest of the sock thin.",
               "Thin everywhere except the landing zones, the knit keeps a close shoe fit while softening each stride."],
              only=(2,)),
            F(["arch support", "arch band"], "Elastic arch band for a snug fit", "an elastic arch band",
              ["An elastic band around the arch keeps the sock from twisting or bunching inside the shoe.",
               "A snug arch band holds the sock in position, so the heel stays where it belongs."]),
            F(["seamless toe", "flat toe seam"], "Hand-linked seamless toe", "a seamless toe",
              ["The toe seam is hand-linked flat, so there is no ridge to rub against the toes.",
               "Toes sit against a smooth, flat-linked seam rather than a bulky ridge."]),
            F(["mesh vents", "ventilated"], "Ventilation zones across the instep", "mesh ventilation zones",
              ["Mesh ventilation zones across the instep let heat escape during long walks.",
               "Open-knit panels over the instep let warm air out as the miles add up."], only=(0, 1, 2)),
            F(["heel tab", "raised heel tab"], "Raised heel tab to prevent slipping", "a raised heel tab",
              ["A raised heel tab stops the sock from sliding down into the shoe and protects the Achilles from the collar.",
               "A padded tab at the back rises above the shoe collar, keeping the sock in place and the heel comfortable."],
              only=(2,)),
            F(["combed cotton", "fine cotton"], "Fine combed cotton with a smooth finish", "fine combed cotton",
              ["Fine combed cotton gives a smooth, lightly sheened finish that looks sharp with dress shoes.",
               "The fine-gauge cotton knit looks polished with loafers and oxfords and feels light underfoot."],
              only=(3,)),
            F(["comfort cuff", "non-binding cuff"], "Comfort cuff that stays up without pinching", "a comfort cuff",
              ["The comfort cuff stays up through the workday without leaving marks on the calf.",
               "A gentle cuff holds the socks up from the morning commute to the evening without pinching."], only=(3,)),
            F(["reinforced heel", "reinforced heel/toe"], "Reinforced heel and toe for longer wear",
              "a reinforced heel and toe",
              ["Reinforced yarns at the heel and toe slow down wear in the spots that usually go first.",
               "Extra-tough yarn at the heel and toe adds months to the life of each pair."]),
            F(["ribbed", "ribbed pattern"], "Classic ribbed pattern in a mid-calf height", "a classic ribbed pattern",
              ["A classic ribbed pattern and mid-calf height suit suits, chinos and everything in between.",
               "The ribbed, mid-calf design stays tidy under trouser hems, whether the outfit is formal or relaxed."],
              only=(3,)),
            F(["crew height", "crew length"], "Crew height to protect against boot rub", "a crew height",
              ["The crew height sits above the boot collar to protect the ankle from rubbing.",
               "Crew-length legs rise past the boot cuff, so leather never rubs against bare skin."], only=(0, 1)),
        ],
        "hooks": ["Socks rarely get much thought until a blister reminds everyone how much they matter.",
                  "Comfortable feet change the whole day, whether it is spent on a trail, a track or an office floor.",
                  "A dependable pair of socks is one of the simplest upgrades to any pair of shoes."],
        "uses": [("long hikes", (0, 1)), ("daily runs", (2,)), ("workdays on the feet", (1, 3)), ("travel days", None),
                 ("gym sessions", (1, 2)), ("weekend walks", (0, 1)), ("office days", (3,)), ("formal events", (3,)),
                 ("cold-weather camping", (0,)), ("ski trips", (0,)), ("race days", (2,)),
                 ("treadmill workouts", (2,)), ("weddings", (3,))],
        "aud": [("hikers", (0, 1)), ("runners", (2,)), ("nurses and retail workers", (1, 3)), ("commuters", None),
                ("anyone who spends the day on their feet", (1, 3)), ("office workers", (3,)), ("backpackers", (0,))],
        "care": ["Wash inside out on a warm cycle and tumble dry low to keep the cushioning lofted.",
                 "A sock clip in the wash keeps each pair together.",
                 "Skip bleach to protect the elastic and the color."],
    },
    "Clothing > Pants": {
        "types": [T("{gender} Stretch Chino Pants", "Pants", True), T("{gender} Convertible Hiking Pants", "Pants", True),
                  T("{gender} Relaxed Fit Jogger Pants", "Pants", True), T("{gender} Straight Leg Work Pants", "Pants", True)],
        "vals": {"gender": ["Men's", "Women's"], "waist": [28, 30, 32, 34, 36, 38], "inseam": [28, 30, 32, 34],
                 "color": ["Khaki Tan", "Navy Blue", "Olive Green", "Charcoal Gray", "Black", "Stone Beige"]},
        "bits": ["{waist}W x {inseam}L"],
        "raw_extra": ["{waist}x{inseam}"],
        "feats": [
            F(["stretch twill", "cotton twill + elastane"], "Cotton twill with a touch of stretch",
              "stretch cotton twill",
              ["Cotton twill with a touch of elastane gives the chinos a crisp look and room to move.",
               "The cotton twill carries a little stretch, so the chinos look sharp at a desk and stay comfortable on a bike."], only=(0,)),
            F(["zip-off legs", "convertible"], "Zip-off legs convert to shorts", "zip-off legs",
              ["The legs zip off above the knee, turning the pants into shorts when the afternoon heats up.",
               "Zippers above the knee let the lower legs come off in seconds when the trail warms up."],
              only=(1,), bit="Zip-Off Legs"),
            F(["upf 50", "sun protective"], "UPF 50 fabric for sun protection", "UPF 50 fabric",
              ["The fabric carries a UPF 50 rating for sun protection on exposed trails.",
               "Fabric with a UPF 50 rating covers the legs on long, exposed days above the tree line."], only=(1,), bit="UPF 50"),
            F(["ripstop", "ripstop nylon"], "Ripstop weave that stops small tears spreading", "ripstop fabric",
              ["A ripstop weave stops small snags from spreading into larger tears.",
               "Ripstop fabric has a grid of reinforcing threads that keeps a small snag from turning into a large tear."], only=(1, 3)),
            F(["french terry", "terry knit"], "Soft French terry knit", "a soft French terry knit",
              ["Soft French terry knit feels brushed on the inside and holds its shape through the day.",
               "French terry gives a soft, looped inside and a smooth outer face that does not bag at the knees."], only=(2,)),
            F(["elastic waist drawcord", "drawstring waist"], "Elastic waistband with an internal drawcord",
              "an elastic drawcord waist",
              ["An elastic waistband with an internal drawcord adjusts the fit without a belt.",
               "The waist combines wide elastic with a drawcord, so the fit can be dialed in without a belt."], only=(2,)),
            F(["cuffed ankle", "ribbed cuffs"], "Ribbed ankle cuffs", "ribbed cuffs",
              ["Ribbed ankle cuffs keep the hems tidy and out of the way.",
               "Knit cuffs gather the legs at the ankle, which keeps hems off the ground and away from bike chains."], only=(2,)),
            F(["zip back pocket", "zip pocket"], "Zippered back pocket for keys", "a zippered back pocket",
              ["A zippered back pocket keeps keys in place on a run or a walk.",
               "Keys and cards ride safely in a zip pocket at the back."], only=(2,)),
            F(["thigh zip pocket", "cargo pocket"], "Zippered thigh pocket for a phone", "a zippered thigh pocket",
              ["A zippered thigh pocket holds a phone or a trail map where it is easy to reach.",
               "A thigh pocket with a zipper keeps a phone handy and closed in while scrambling."], only=(1,)),
            F(["deep pockets", "deep front pockets"], "Deep front pockets that hold a phone", "deep front pockets",
              ["Deep front pockets hold a phone and keys without spilling when seated.",
               "Front pockets are cut deep, so a phone stays put when sitting in a car or on a bench."]),
            F(["reinforced knees", "double knee"], "Double-layer knees for kneeling work", "double-layer knees",
              ["Double-layer knees stand up to kneeling on concrete, gravel and workshop floors.",
               "A second layer of fabric at each knee takes the abrasion from kneeling jobs."], only=(3,)),
            F(["tool loop", "hammer loop"], "Hammer loop and utility side pocket", "a hammer loop",
              ["A hammer loop and a utility side pocket keep small tools at hand.",
               "A side utility pocket and a hammer loop keep a tape measure and tools within reach."], only=(3,)),
            F(["gusseted crotch", "gusset"], "Gusseted crotch for easier movement", "a gusseted crotch",
              ["A gusseted crotch adds room to move when cycling, climbing stairs or crouching.",
               "An extra gusset panel lets the legs move easily when stepping high or squatting."],
              only=(0, 3)),
            F(["{inseam} inseam", "inseam {inseam}"], "Waist {waist} inches, inseam {inseam} inches",
              "a {inseam}-inch inseam",
              ["This pair measures {waist} inches at the waist with a {inseam}-inch inseam.",
               "Sizing for this listing is a {waist}-inch waist and a {inseam}-inch inseam."]),
            F(["slim tapered", "slim fit"], "Slim fit with a tapered leg", "a slim tapered leg",
              ["The slim cut tapers gently below the knee for a clean line over sneakers or loafers.",
               "A slim leg narrows toward the ankle, giving a modern shape without feeling tight."], only=(0,)),
            F(["wrinkle resistant", "no-iron"], "Wrinkle-resistant finish for travel", "a wrinkle-resistant finish",
              ["A wrinkle-resistant finish means the pants come out of a suitcase ready to wear.",
               "Creases fall out quickly thanks to a wrinkle-resistant finish, which helps on business trips."], only=(0,)),
        ],
        "hooks": ["Pants have to handle a lot: sitting, kneeling, walking and everything in between.",
                  "A dependable pair of pants is the foundation of a practical wardrobe.",
                  "Fit and fabric decide whether a pair of pants gets worn every week or stays folded in a drawer."],
        "uses": [("office days", (0,)), ("weekend hikes", (1,)), ("travel", None), ("lounging at home", (2,)),
                 ("job sites", (3,)), ("errands around town", None), ("dinner with friends", (0,)),
                 ("casual Fridays", (0,)), ("backpacking trips", (1,)), ("national park visits", (1,)),
                 ("morning walks", (2,)), ("gym warm-ups", (2,)), ("long flights", (0, 2)),
                 ("workshop projects", (3,)), ("yard work", (3,)), ("weekend DIY projects", (3,))],
        "aud": [("commuters", (0,)), ("hikers", (1,)), ("tradespeople", (3,)), ("travelers", None),
                ("anyone who wants comfort without looking sloppy", (0, 2)), ("office workers", (0,)),
                ("trail walkers", (1,)), ("runners and walkers", (2,)), ("contractors", (3,)),
                ("DIY enthusiasts", (3,))],
        "care": ["Machine wash cold inside out and hang to dry to keep the color deep.",
                 "Warm iron if needed, avoiding any printed labels.",
                 "Empty the pockets and close the zips before washing."],
    },
    # ------------------------------------------------------------------ Home & Garden
    "Home & Garden > Cookware": {
        "types": [T("Stainless Steel Frying Pan", "Frying Pan", color=["Brushed Silver", "Polished Silver"]),
                  T("Pre-Seasoned Cast Iron Skillet", "Skillet", color=["Matte Black"]),
                  T("Tri-Ply Saucepan with Lid", "Saucepan", color=["Brushed Silver", "Polished Silver"],
                    qt=[1.5, 2, 3, 4]),
                  T("Enameled Cast Iron Dutch Oven", "Dutch Oven", qt=[4.5, 5.5, 7])],
        "vals": {"inch": [8, 10, 12], "qt": [2, 3], "deg": [450, 500, 550],
                 "color": ["Cherry Red", "Ocean Blue", "Sage Green", "Cream White", "Charcoal Gray"]},
        "feats": [
            F(["{inch} inch", "{inch}in"], "Generous {inch}-inch cooking surface", "a {inch}-inch cooking surface",
              ["The {inch}-inch cooking surface leaves room to sear without crowding the pan.",
               "A {inch}-inch diameter gives enough room for a family breakfast or a pair of steaks."],
              only=(0, 1), bit='{inch}"'),
            F(["{qt} qt", "{qt} quart"], "Holds {qt} quarts for soups, sauces and grains", "a {qt}-quart capacity",
              ["With a {qt}-quart capacity, {it} handle{s} a weeknight soup, a batch of rice or a slow-cooked sauce.",
               "The {qt}-quart interior has room for a pot of chili, a batch of grains or a braise for the family."],
              only=(2, 3), bit="{qt} Quart"),
            F(["tri-ply", "3-ply clad"], "Tri-ply construction with an aluminum core", "tri-ply construction",
              ["Tri-ply construction bonds an aluminum core between stainless layers, spreading heat evenly up the sides.",
               "An aluminum core runs through the base and walls, so there are fewer hot spots under the food."],
              only=(0, 2), bit="Tri-Ply"),
            F(["pre-seasoned", "seasoned"], "Pre-seasoned with vegetable oil and ready to cook",
              "a pre-seasoned surface",
              ["The skillet arrives seasoned with vegetable oil, and the surface only improves with regular cooking.",
               "A factory seasoning of vegetable oil means the skillet can go on the burner the day it arrives."],
              only=(1,)),
            F(["heat retention", "heavy cast iron"], "Cast iron holds heat for steady searing", "heavy cast iron",
              ["Heavy cast iron holds heat when cold food hits the pan, giving a deep, even sear.",
               "Thick cast iron stores heat, so the temperature barely drops when steaks or vegetables go in."], only=(1, 3)),
            F(["enamel interior", "enameled"], "Smooth enamel interior that needs no seasoning",
              "a smooth enamel interior",
              ["A smooth enamel interior needs no seasoning and will not react with tomatoes, wine or citrus.",
               "The enamel lining makes acidic dishes easy, from tomato sauce to wine-braised short ribs."],
              only=(3,)),
            F(["self-basting lid", "basting lid"], "Tight-fitting lid with self-basting nubs", "a self-basting lid",
              ["Small nubs under the tight-fitting lid collect condensation and drip it back over the food during braising.",
               "The heavy lid seals in moisture, and raised dots underneath return it evenly to the pot."],
              only=(3,)),
            F(["oven safe {deg}f", "oven {deg}f"], "Oven-safe up to {deg} degrees F", "oven use up to {deg} degrees F",
              ["{It} move{s} from stovetop to oven at temperatures up to {deg} degrees F, which suits finishing a frittata or a roast.",
               "Oven-safe to {deg} degrees F, {ref} can start a dish on the burner and finish it under the broiler."]),
            F(["induction ok", "all cooktops"], "Works on gas, electric, ceramic and induction cooktops",
              "induction compatibility",
              ["A flat magnetic base works on gas, electric, ceramic and induction cooktops.",
               "Induction, gas, ceramic or electric coil, the magnetic base heats evenly on all of them."], bit="Induction Ready"),
            F(["stay-cool handle", "riveted handle"], "Riveted stainless handle that stays cooler",
              "a riveted stay-cool handle",
              ["The riveted stainless handle is shaped to stay cooler on the stovetop and gives a firm grip when tilting.",
               "A long, riveted handle stays comfortable to hold and balances the weight when tossing vegetables."],
              only=(0, 2)),
            F(["dishwasher safe", "dw safe"], "Dishwasher-safe for easy cleanup", "dishwasher-safe construction",
              ["{Ref} can go in the dishwasher, though a quick hand wash keeps the polish bright.",
               "Cleanup is easy, since the stainless surfaces are fine in the dishwasher."], only=(0, 2)),
            F(["helper handle", "pour spouts"], "Helper handle and pour spouts on both sides", "dual pour spouts",
              ["A helper handle makes lifting a full skillet easier, and pour spouts on both sides drain off fat neatly.",
               "Lipped spouts on each side pour off drippings, and a short helper handle supports the weight."],
              only=(1,)),
            F(["measurement marks", "etched markings"], "Etched measurement marks inside", "etched measurement marks",
              ["Etched measurement marks inside the pot take the guesswork out of adding water or broth for rice and grains.",
               "Interior markings show quarts and liters, so measuring cups can stay in the drawer."],
              only=(2,)),
            F(["glass lid", "vented lid"], "Tempered glass lid with a steam vent", "a vented glass lid",
              ["A tempered glass lid with a small steam vent lets cooks check progress without lifting it.",
               "A vented glass lid keeps sauces from boiling over while still showing what is happening inside."],
              only=(2,)),
            F(["wide loop handles", "big handles"], "Wide loop handles for oven mitts", "wide loop handles",
              ["Wide loop handles leave room for thick oven mitts when moving a full pot.",
               "Generous side handles make it easier to carry a heavy pot from oven to table."], only=(3,)),
        ],
        "hooks": ["Good cookware makes everyday cooking calmer, with even heat and handles that feel right in the hand.",
                  "A pan that heats evenly and cleans up easily tends to become the one that never leaves the stove.",
                  "Home cooks know that the right pot or pan can make a simple recipe turn out better."],
        "uses": [("weeknight dinners", None), ("weekend brunches", (0, 1)), ("batch cooking", (2, 3)),
                 ("searing steaks", (0, 1)), ("simmering sauces", (2, 3)), ("family meals", None),
                 ("slow braises", (3,)), ("fried eggs and pancakes", (0, 1)), ("cooking rice and grains", (2,)),
                 ("fresh bread", (3,)), ("reheating soups", (2,)), ("skillet cornbread", (1,))],
        "aud": ["home cooks", "new homeowners", "anyone learning to cook", "busy families", "people who cook most nights"],
        "care": ["Let {obj} cool before washing to protect the surface from thermal shock.",
                 "Dry thoroughly after washing and store with a cloth between stacked pans.",
                 ("Wipe a thin layer of oil over the surface after drying to maintain the seasoning.", (1,))],
    },
    "Home & Garden > Bedding": {
        "types": [T("Cotton Sateen Sheet Set", "Sheet Set"), T("Percale Sheet Set", "Sheet Set", tc=[200, 300, 400]),
                  T("Washed Linen Duvet Cover Set", "Duvet Cover Set"),
                  T("Quilted Mattress Protector", "Mattress Protector")],
        "vals": {"size": ["Twin", "Full", "Queen", "King", "California King"], "tc": [300, 400, 500, 600],
                 "depth": [14, 16, 18],
                 "color": ["Cloud White", "Dove Gray", "Dusty Blue", "Sage Green", "Ivory White", "Charcoal Gray",
                           "Blush Pink"]},
        "bits": ["{size} Size"],
        "raw_extra": ["{size_l}"],
        "feats": [
            F(["{tc}tc sateen", "{tc} thread count"], "Long-staple cotton sateen, {tc} thread count",
              "{tc}-thread-count cotton sateen",
              ["Long-staple cotton woven in a {tc} thread count sateen gives the sheets a smooth, gently lustrous face.",
               "The {tc} thread count sateen weave has a soft drape and a subtle sheen that looks polished on the bed."],
              only=(0,), bit="{tc} Thread Count"),
            F(["crisp percale", "{tc}tc percale"], "Crisp, matte percale weave in long-staple cotton",
              "crisp cotton percale",
              ["The one-over-one-under percale weave feels crisp and cool, like a freshly pressed shirt.",
               "The matte percale weave breathes well, which warm sleepers tend to appreciate."],
              only=(1,), bit="{tc} Thread Count"),
            F(["{depth}in deep pockets", "{depth} inch pocket"], "Fitted sheet with {depth}-inch deep pockets",
              "{depth}-inch deep pockets",
              ["The fitted sheet has {depth}-inch pockets and elastic all the way around, so it stays put on thicker mattresses.",
               "Deep {depth}-inch pockets with full elastic keep the fitted sheet snug, even on thick pillow-style mattresses."],
              only=(0, 1), bit='{depth}" Deep Pocket'),
            F(["4pc set", "4 piece"], "Set includes a flat sheet, fitted sheet and two pillowcases",
              "a four-piece set",
              ["The set includes a flat sheet, a fitted sheet and two pillowcases, all cut from the same fabric.",
               "Inside the package are a flat sheet, a fitted sheet and a pair of matching pillowcases."],
              only=(0, 1), bit="4-Piece Set"),
            F(["stonewashed linen", "washed linen"], "Stonewashed linen with a relaxed texture", "stonewashed linen",
              ["Stonewashing softens the linen before it leaves the mill, giving it a relaxed, lived-in texture from the first night.",
               "Washed linen breathes easily and gets softer with every laundry cycle."],
              only=(2,)),
            F(["button closure", "hidden buttons"], "Hidden button closure and corner ties", "a hidden button closure",
              ["A hidden button closure keeps the duvet inside, and corner ties stop the insert from shifting.",
               "Discreet buttons close the cover, and interior ties hold each corner of the comforter in place."],
              only=(2,)),
            F(["2 shams", "incl shams"], "Includes a duvet cover and two matching shams", "two matching shams",
              ["Two matching shams complete the look and fit standard pillows.",
               "A pair of shams in the same linen finishes the bed with a coordinated look."], only=(2,), bit="3-Piece Set"),
            F(["quilted top", "quilted"], "Quilted surface with a light layer of fill", "a quilted surface",
              ["A quilted surface adds a light layer of softness without changing the feel of the mattress.",
               "The quilted layer adds a thin cushion while leaving the support of the mattress unchanged."],
              only=(3,)),
            F(["waterproof backing", "waterproof"], "Waterproof backing that stays quiet", "a quiet waterproof backing",
              ["A thin waterproof backing blocks spills from reaching the mattress and does not crinkle when turning over.",
               "Spills and accidents stop at the waterproof layer, which stays silent under the sheet."],
              only=(3,), bit="Waterproof"),
            F(["fits up to {depth}in", "deep skirt {depth}in"], "Stretch skirt fits mattresses up to {depth} inches deep",
              "a stretch skirt",
              ["The stretch skirt fits mattresses up to {depth} inches deep and tucks neatly under the corners.",
               "An elastic skirt reaches around mattresses as deep as {depth} inches and stays put through the night."],
              only=(3,)),
            F(["breathable", "breathable weave"], "Breathable weave for comfortable sleep", "a breathable weave",
              ["Air moves easily through the fabric, helping regulate warmth through the night.",
               "The breathable weave lets body heat escape, which helps on warm nights."]),
            F(["{size_l} size", "{size_l}"], "{size} size, cut to standard mattress dimensions", "{size} sizing",
              ["This listing is for the {size} size, cut to standard mattress dimensions.",
               "Every piece here is cut for a {size} mattress."]),
            F(["pre-washed", "prewashed"], "Pre-washed to limit shrinkage", "pre-washed fabric",
              ["Every piece is pre-washed, which limits shrinkage and keeps the fit consistent after laundering.",
               "Pre-washing at the mill softens the fabric and keeps later shrinkage to a minimum."],
              only=(0, 1, 2)),
            F(["machine washable", "washer/dryer ok"], "Machine washable and dryer-friendly",
              "machine-washable construction",
              ["{Ref} can go straight in the washer and dryer on a low setting.",
               "Laundering is simple: a regular wash and a low tumble dry keep it fresh."], only=(3,)),
        ],
        "hooks": ["Sleep improves when the bed feels inviting, and bedding plays a large part in that.",
                  "A well-made bed starts with fabric that feels good against the skin and holds up to frequent washing.",
                  "Bedding is used every single night, so it deserves the same care as any other everyday essential."],
        "uses": ["everyday sleep", "guest rooms", "warm summer nights", "cozy winter weekends", "vacation rentals",
                 "refreshing a bedroom"],
        "aud": ["warm sleepers", "light sleepers", "families", "hosts preparing a guest room",
                "anyone furnishing a first apartment"],
        "care": ["Wash in cold or warm water with a mild detergent and tumble dry low.",
                 "Remove promptly from the dryer and smooth by hand to minimize wrinkles.",
                 "Skip bleach and fabric softener to keep the fibers soft and the color even."],
    },
    "Home & Garden > Garden Tools": {
        "types": [T("Bypass Pruning Shears", "Pruning Shears", True, cutmm=[20, 22, 25], inch=[8, 8.5]),
                  T("Anvil Pruning Shears", "Pruning Shears", True, cutmm=[20, 22, 25], inch=[8, 8.5]),
                  T("Extendable Bypass Loppers", "Loppers", True, cutmm=[38, 44, 50], inch=[22, 26]),
                  T("Wavy Blade Hedge Shears", "Hedge Shears", True, inch=[22, 24])],
        "vals": {"cutmm": [20], "inch": [8], "ext": [32, 36, 40], "bl": [8, 10],
                 "color": ["Forest Green", "Orange and Black", "Red and Gray", "Blue and Black", "Olive Green"]},
        "bits": ["{inch} Inch"],
        "feats": [
            F(["sk5 blade", "sk5 steel"], "SK5 high-carbon steel blades", "SK5 high-carbon steel blades",
              ["The SK5 high-carbon steel blades are heat-treated to hold a keen edge through a full season of pruning.",
               "Blades forged from SK5 high-carbon steel stay sharp longer and can be honed with a standard file."],
              bit="SK5 Steel Blades"),
            F(["bypass cut", "bypass"], "Bypass action for clean cuts on live stems", "a bypass cutting action",
              ["A bypass action works like scissors, slicing live stems cleanly so plants recover quickly.",
               "Two curved blades pass each other like scissors, leaving a clean cut on green growth."],
              only=(0, 2)),
            F(["anvil cut", "anvil"], "Anvil action for dry, woody stems", "an anvil cutting action",
              ["The anvil design presses the blade onto a flat edge, which makes light work of dry and dead wood.",
               "A straight blade closes onto a flat anvil, giving extra force for brittle, woody stems."],
              only=(1,)),
            F(["{cutmm}mm capacity", "cuts {cutmm}mm"], "Cuts branches up to {cutmm} mm thick",
              "a {cutmm} mm cutting capacity",
              ["{It} handle{s} branches up to {cutmm} mm thick, covering most shrubs, roses and fruit trees.",
               "The jaws open wide enough for branches of up to {cutmm} mm, which covers most pruning around the yard."],
              only=(0, 1, 2), bit="{cutmm}mm Cutting Capacity"),
            F(["safety lock", "lock"], "One-hand safety lock keeps blades closed", "a one-hand safety lock",
              ["A one-hand safety lock keeps the blades closed in a pocket or tool belt.",
               "The blades lock shut with a thumb, so the shears can ride safely in a pocket."], only=(0, 1)),
            F(["non-stick coating", "sap resistant"], "Non-stick blade coating that sheds sap",
              "a sap-resistant coating",
              ["A non-stick coating on the blades sheds sap and resin, so cuts stay smooth over long sessions.",
               "Sap slides off the coated blades, keeping the action light even after an afternoon of work."]),
            F(["ergo grips", "soft grips"], "Cushioned grips with a non-slip finish", "cushioned non-slip grips",
              ["Cushioned grips with a non-slip finish reduce strain on the hand and wrist during repetitive cuts.",
               "Soft, textured grips stay comfortable in wet or gloved hands."]),
            F(["extends to {ext}in", "telescoping"], "Telescoping handles extend from {inch} to {ext} inches",
              "telescoping handles",
              ["The telescoping handles extend from {inch} to {ext} inches, adding reach for high branches without a ladder.",
               "Handles slide out from {inch} to {ext} inches, adding leverage for thick limbs and reach for high ones."],
              only=(2,), bit="Extends to {ext} Inches"),
            F(["shock absorbers", "bumpers"], "Rubber bumpers absorb shock at the end of each cut",
              "shock-absorbing bumpers",
              ["Rubber bumpers cushion the handles at the end of each stroke, sparing the elbows on heavy jobs.",
               "Shock-absorbing bumpers take the jolt out of each closing stroke."],
              only=(2, 3)),
            F(["wavy blades", "serrated"], "Wavy blades grip branches as they cut", "wavy blades",
              ["Wavy blade edges hold stems in place as they close, so branches do not slide out of the cut.",
               "The wavy edge grips twigs during the cut instead of pushing them away."],
              only=(3,)),
            F(["{bl} in blades", "{bl}in blade"], "Blades of {bl} inches for shaping hedges", "{bl}-inch blades",
              ["The {bl}-inch blades take long, even strokes for shaping box hedges and privet.",
               "Long {bl}-inch blades make quick work of flat hedge faces and rounded topiary."],
              only=(3,), bit="{bl} Inch Blades"),
            F(["sap groove", "sap channel"], "Sap groove keeps the pivot from sticking", "a sap groove",
              ["A sap groove along the lower blade keeps resin away from the pivot, so the action stays smooth.",
               "A channel cut into the lower blade stops sticky sap from gumming up the pivot."],
              only=(0, 1)),
            F(["replaceable blade", "tension bolt"], "Replaceable blade and adjustable tension bolt",
              "an adjustable tension bolt",
              ["An adjustable tension bolt keeps the blades aligned, and the cutting blade can be replaced when worn.",
               "The pivot bolt can be tightened as the tool wears, and a fresh blade can be fitted when needed."]),
        ],
        "hooks": ["Regular pruning keeps plants shapely and productive, and the right tool makes the job quicker and kinder to the hands.",
                  "A clean cut matters in the garden: it helps stems recover and keeps shrubs looking tidy.",
                  "Gardeners reach for cutting tools more than almost anything else in the shed."],
        "uses": [("spring pruning", None), ("shaping hedges", (3,)), ("deadheading roses", (0,)),
                 ("clearing overgrown borders", (2, 3)), ("orchard maintenance", (0, 2)), ("weekend yard work", None),
                 ("cutting back dead wood", (1, 2)), ("trimming shrubs", (0, 1, 3)), ("fall cleanup", None)],
        "aud": [("home gardeners", None), ("allotment growers", None), ("landscapers", None),
                ("new homeowners with a yard", None), ("anyone tending fruit trees", (0, 1, 2))],
        "care": ["Wipe the blades clean after each use and apply a drop of oil to the pivot.",
                 "Store {obj} in a dry place to keep the steel from rusting.",
                 "Sharpen the cutting edge with a fine file when cuts start to crush rather than slice."],
    },
    "Home & Garden > Lamps": {
        "types": [T("LED Desk Lamp", "Desk Lamp", height=[15, 18, 20]),
                  T("Dimmable Floor Lamp", "Floor Lamp", height=[58, 62, 65]),
                  T("Ceramic Table Lamp", "Table Lamp", height=[18, 22, 24, 26]),
                  T("Rechargeable LED Table Lamp", "Table Lamp", height=[10, 12])],
        "vals": {"lm": [400, 450, 600, 800, 1000, 1200], "kmin": [2700], "kmax": [5000, 6500],
                 "levels": [3, 5, 7, 10], "height": [15], "hours": [12, 20, 30],
                 "color": ["Matte Black", "Brushed Gold", "Satin White", "Sage Green", "Walnut Brown",
                           "Charcoal Gray"]},
        "feats": [
            F(["{lm} lumens", "{lm}lm"], "Bright {lm}-lumen LED output", "{lm} lumens of LED light",
              ["An output of {lm} lumens lights a desk or reading chair without harsh glare.",
               "The LED array produces {lm} lumens, enough for close work without straining."],
              only=(0, 1, 3), bit="{lm} Lumens"),
            F(["{kmin}-{kmax}k", "cct adjustable"], "Color temperature from {kmin}K warm to {kmax}K cool",
              "adjustable color temperature",
              ["Color temperature shifts from a warm {kmin}K for evening reading to a crisp {kmax}K for focused work.",
               "The light can run warm at {kmin}K for winding down or cool at {kmax}K for detailed tasks."],
              only=(0, 1, 3), bit="{kmin}K to {kmax}K"),
            F(["{levels} brightness levels", "dimmable"], "Touch dimming with {levels} preset levels",
              "{levels} brightness presets",
              ["A touch panel steps through {levels} brightness presets, and holding it dims smoothly to any level in between.",
               "Brightness moves through {levels} presets with a light touch on the base."],
              only=(0, 1, 3)),
            F(["usb-c port", "usb charging port"], "USB-C charging port in the base", "a USB-C port in the base",
              ["A USB-C port in the base charges a phone overnight, leaving a wall outlet open.",
               "The base doubles as a charger, with a USB-C port for a phone or earbuds."], only=(0,)),
            F(["flexible arm", "adjustable arm"], "Adjustable arm and rotating head", "an adjustable arm",
              ["The arm folds and the head rotates, so light lands exactly on the page or keyboard.",
               "An articulated arm and swiveling head put the light precisely where it is needed."], only=(0,)),
            F(["remote", "remote + foot switch"], "Remote control and foot switch", "a remote control",
              ["A small remote control and a foot switch at the base mean no bending down to turn the lamp on or off.",
               "Turning the lamp on takes a tap of the foot switch or a press on the remote from across the room."],
              only=(1,)),
            F(["{height}in tall", "height {height}in"], "Stands {height} inches tall", "a {height}-inch height",
              ["At {height} inches tall, {ref} spread{s} light across a reading corner or beside a sofa.",
               "Standing {height} inches tall, {it} cast{s} an even pool of light over a chair or side table."],
              only=(1, 2), bit='{height}" Tall'),
            F(["ceramic base", "glazed ceramic"], "Glazed ceramic base with a reactive finish",
              "a glazed ceramic base",
              ["The glazed ceramic base has a reactive finish, so no two pieces look exactly alike.",
               "Each ceramic base is glazed by hand, and the reactive glaze gives every lamp a slightly different pattern."], only=(2,)),
            F(["linen shade", "drum shade"], "Linen drum shade that diffuses light", "a linen drum shade",
              ["A linen drum shade softens the light into a warm, even glow.",
               "Light filters through a linen shade for a soft glow that suits evenings."], only=(2,)),
            F(["e26 socket", "e26"], "Standard E26 socket, works with LED bulbs", "a standard E26 socket",
              ["The standard E26 socket accepts LED bulbs up to a 60 W equivalent.",
               "A common E26 socket takes everyday LED bulbs, so replacements are easy to find."], only=(2,)),
            F(["{hours}h battery", "cordless {hours}h"], "Rechargeable battery runs up to {hours} hours",
              "up to {hours} hours of cordless light",
              ["A built-in battery runs for up to {hours} hours on the low setting, so the lamp can move to a patio or a dinner table without a cord.",
               "Cordless and rechargeable, the lamp runs for up to {hours} hours, so it can light a balcony dinner or a bookshelf."],
              only=(3,), bit="{hours}-Hour Battery"),
            F(["low flicker", "steady led"], "Steady, low-flicker LED driver", "a low-flicker driver",
              ["A low-flicker driver keeps the light steady during long reading or screen sessions.",
               "The LED driver keeps output steady, without a faint, distracting flicker."],
              only=(0, 1, 3)),
            F(["weighted base", "heavy base"], "Weighted base for stability", "a weighted base",
              ["A weighted base keeps the tall stem steady on rugs and hard floors.",
               "A heavy base anchors the lamp, so a passing pet or a bumped cable will not topple it."], only=(1,)),
            F(["memory function", "remembers setting"], "Remembers the last brightness and color setting",
              "a memory function",
              ["The lamp remembers its last brightness and color setting, so it comes back on exactly as it was left.",
               "A memory function restores the previous brightness and color each time the lamp turns on."],
              only=(0, 1, 3)),
            F(["inline dimmer", "cord dimmer"], "Inline dimmer switch on the cord", "an inline dimmer",
              ["An inline dimmer on the cord adjusts brightness from a gentle glow to full output.",
               "A slider on the cord sets the brightness anywhere from a soft glow to full light."], only=(2,)),
            F(["felt pad", "felt base"], "Felt pad protects furniture surfaces", "a felt-lined base",
              ["A felt pad under the base protects wooden side tables from scratches.",
               "Felt on the underside keeps the ceramic from marking furniture."], only=(2,)),
        ],
        "hooks": ["Lighting shapes how a room feels, and a well-placed lamp can change the mood of an entire evening.",
                  "Overhead lights rarely suit reading or focused work, which is where a good lamp steps in.",
                  "The right lamp balances useful light with a design that looks at home in the room."],
        "uses": ["evening reading", "home office work", "late-night studying", "bedside use",
                 "living room ambiance", "craft projects"],
        "aud": ["students", "remote workers", "avid readers", "anyone furnishing a bedroom or study", "hobbyists"],
        "care": ["Dust the shade and base with a dry microfiber cloth.",
                 "Unplug the lamp before cleaning and keep liquid cleaners away from the switch."],
    },
    # ------------------------------------------------------------------ Sports & Outdoors
    "Sports & Outdoors > Tents": {
        "types": [T("{p}-Person Backpacking Tent", "Tent", p=[1, 2, 3], kg=[1.1, 1.4, 1.8, 2.2]),
                  T("{p}-Person Dome Camping Tent", "Tent", p=[2, 4, 6], kg=[3.5, 4.2, 5.6], height=[48, 52, 60]),
                  T("{p}-Person Instant Cabin Tent", "Tent", p=[4, 6, 8], kg=[7.5, 9.8, 12.4], height=[72, 78, 84])],
        "vals": {"p": [2], "kg": [2], "height": [48], "hh": [1500, 3000, 5000], "min": [2, 3, 4],
                 "color": ["Olive Green", "Sand Beige", "Orange and Gray", "Forest Green", "Sky Blue"]},
        "feats": [
            F(["{hh}mm hh", "{hh}mm fly"], "Rainfly with a {hh} mm hydrostatic head", "a {hh} mm waterproof rainfly",
              ["The rainfly is coated to a {hh} mm hydrostatic head and seam-taped, so overnight showers stay outside.",
               "A seam-taped rainfly with a {hh} mm hydrostatic head handles steady rain on exposed campsites."],
              bit="{hh}mm Waterproof"),
            F(["{kg}kg", "trail wt {kg}kg"], "Trail weight of {kg} kg", "a {kg} kg trail weight",
              ["With a trail weight of {kg} kg, {it} leave{s} room in the pack for food and a warmer sleeping bag.",
               "At {kg} kg on the trail, the tent is light enough to carry over several days of hiking."],
              only=(0,), bit="{kg} kg"),
            F(["{kg}kg packed", "packed {kg}kg"], "Packed weight of {kg} kg with carry bag", "a {kg} kg packed weight",
              ["All in, the tent weighs {kg} kg and packs into a carry bag with compression straps.",
               "The packed weight is {kg} kg, and compression straps squeeze the bag down for the car trunk."], only=(1, 2)),
            F(["2 doors", "2 vestibules"], "Two doors and two vestibules for gear", "two doors and vestibules",
              ["Two doors and two vestibules give each camper a private exit and a dry spot for boots and packs.",
               "Each side has a door and a covered vestibule, so nobody climbs over a tent mate at night."],
              only=(0, 1)),
            F(["instant setup", "setup {min}min"], "Pre-attached poles for setup in about {min} minutes",
              "pre-attached poles",
              ["Pre-attached poles unfold into shape, so the tent stands in about {min} minutes.",
               "The frame is already attached, and the tent goes up in roughly {min} minutes."],
              only=(2,), bit="{min}-Minute Setup"),
            F(["mesh roof", "mesh canopy"], "Mesh canopy for airflow and stargazing", "a mesh canopy",
              ["A mesh canopy keeps insects out while letting air flow, and with the fly off it opens a view of the night sky.",
               "Mesh walls let air circulate on warm nights and keep bugs outside."]),
            F(["aluminum poles", "alu poles"], "Lightweight aluminum poles with color-coded clips", "aluminum poles",
              ["Aluminum poles with color-coded clips make pitching straightforward, even by headlamp.",
               "Color-matched clips and light aluminum poles make the setup easy to learn."],
              only=(0, 1)),
            F(["room divider", "divider"], "Removable room divider for privacy", "a room divider",
              ["A removable divider splits the interior into two rooms for families or groups.",
               "Hang the divider to create two sleeping rooms, or leave it out for one open space."], only=(2,)),
            F(["bathtub floor", "tub floor"], "Bathtub-style floor with raised edges", "a bathtub-style floor",
              ["The bathtub-style floor wraps up the sides, keeping ground water away from sleeping bags.",
               "A tough floor curves up the walls, so puddles stay outside the sleeping area."]),
            F(["storage pockets", "gear loft"], "Interior pockets and a gear loft", "interior storage pockets",
              ["Interior pockets and an overhead gear loft keep headlamps, phones and glasses off the floor.",
               "Storage pockets along the walls hold the small things that otherwise get lost in a sleeping bag."]),
            F(["{height}in peak", "peak {height}in"], "Peak height of {height} inches", "a {height}-inch peak height",
              ["A {height}-inch peak height gives room to sit up, change clothes and sort gear inside.",
               "With {height} inches of headroom at the peak, there is space to move around comfortably."], only=(1, 2)),
            F(["self-supporting", "semi-freestanding"], "Self-supporting frame pitches on rock or sand",
              "a self-supporting frame",
              ["The self-supporting frame pitches on rocky or sandy ground where stakes struggle to hold.",
               "Because the frame stands on its own, the tent can be moved after pitching to find the flattest spot."], only=(0,)),
            F(["reflective guylines", "guy lines"], "Reflective guy lines for stability in wind",
              "reflective guy lines",
              ["Reflective guy lines add stability in wind and are easy to spot after dark.",
               "Guy lines with reflective tracers keep the tent taut in wind and visible at night."]),
        ],
        "hooks": ["A good night's sleep outdoors starts with a shelter that pitches quickly and stands firm when the weather turns.",
                  "Campsites vary from sheltered forest clearings to windy ridgelines, and a tent has to handle both.",
                  "Time at camp is better spent by the fire than wrestling with poles, so easy setup matters."],
        "uses": [("backpacking trips", (0,)), ("family campouts", (1, 2)), ("festival weekends", (1, 2)),
                 ("car camping", (1, 2)), ("lakeside overnights", None), ("scout trips", None), ("thru-hikes", (0,)),
                 ("bikepacking", (0,)), ("reunions at the campground", (2,))],
        "aud": [("backpackers", (0,)), ("families", (1, 2)), ("first-time campers", None), ("festival goers", (1, 2)),
                ("outdoor clubs", None), ("solo hikers", (0,))],
        "care": ["Pitch the tent at home once before the first trip to learn the setup.",
                 "Dry {obj} fully before storing to prevent mildew.",
                 "A footprint under the floor protects it from sharp stones and extends its life."],
    },
    "Sports & Outdoors > Yoga & Exercise Mats": {
        "types": [T("Non-Slip Yoga Mat", "Yoga Mat", mm=[4, 5, 6]),
                  T("Extra Thick Exercise Mat", "Exercise Mat", mm=[10, 12, 15]),
                  T("Foldable Travel Yoga Mat", "Yoga Mat", mm=[1.5, 2, 3])],
        "vals": {"mm": [4], "len": [68, 72, 74, 78], "width": [24, 26, 28], "kg": [0.9, 1.1, 1.3],
                 "mat": ["TPE", "natural tree rubber", "PU and natural rubber"],
                 "color": ["Ocean Blue", "Charcoal Gray", "Lavender Purple", "Sage Green", "Black", "Coral Pink"]},
        "feats": [
            F(["{mm}mm thick", "{mm}mm"], "Cushioned {mm} mm thickness", "{mm} mm of cushioning",
              ["At {mm} mm thick, the mat cushions knees and wrists on hard floors.",
               "The {mm} mm profile balances cushioning with a stable feel under the feet."],
              bit="{mm}mm Thick"),
            F(["{len}x{width}in", "{len} x {width}"], "Measures {len} by {width} inches", "a {len} by {width} inch surface",
              ["The {len} by {width} inch surface gives taller users room to stretch out fully.",
               "A {len} by {width} inch footprint leaves space for wide stances and full-length stretches."],
              bit='{len}" x {width}"'),
            F(["{mat} surface", "{mat}"], "Grippy {mat} surface, even when damp", "a grippy {mat} surface",
              ["A {mat} surface holds hands and feet in place, even as practice heats up.",
               "The {mat} upper layer provides a steady grip for downward dog and lunges."], only=(0, 2)),
            F(["alignment lines", "guide lines"], "Printed alignment lines for positioning", "printed alignment lines",
              ["Subtle alignment lines help place hands and feet consistently from one session to the next.",
               "Faint guide lines help keep poses symmetrical."],
              only=(0,)),
            F(["nbr foam", "dense foam"], "Dense NBR foam that rebounds after use", "dense NBR foam",
              ["Dense NBR foam springs back after each session and softens floor exercises like crunches and planks.",
               "Thick NBR foam cushions the spine and knees during core work and stretching."],
              only=(1,)),
            F(["carry strap", "strap incl"], "Includes an adjustable carry strap", "a carry strap",
              ["An adjustable strap wraps around the rolled mat for the walk to class or the gym.",
               "A shoulder strap keeps the rolled mat tidy on the way to class."]),
            F(["folds flat", "foldable"], "Folds into a compact square for luggage", "a foldable design",
              ["The mat folds into a compact square that fits in a carry-on or a tote.",
               "Instead of rolling, the mat folds flat like a towel and slips into luggage."], only=(2,)),
            F(["{kg}kg", "weighs {kg}kg"], "Weighs just {kg} kg", "a {kg} kg weight",
              ["At {kg} kg, {it} add{s} little to a suitcase and travel{s} easily to a hotel room or a park.",
               "The mat weighs only {kg} kg, so it goes along on trips without much thought."],
              only=(2,)),
            F(["textured underside", "grip bottom"], "Textured underside grips the floor", "a textured underside",
              ["A textured underside grips wood, tile and carpet so the mat does not creep during flows.",
               "Textured backing keeps the mat from shifting on smooth floors."],
              only=(0, 1)),
            F(["closed cell", "sweat resistant"], "Closed-cell surface resists sweat absorption",
              "a closed-cell surface",
              ["A closed-cell surface keeps sweat on the outside, where a quick wipe removes it.",
               "Sweat stays on the closed-cell surface instead of soaking in, which makes cleaning quick."]),
            F(["lies flat", "no curling"], "Lies flat without curling at the edges", "edges that lie flat",
              ["The mat unrolls flat without curling at the edges, so practice starts straight away.",
               "Edges stay down from the moment the mat is unrolled."], only=(0,)),
        ],
        "hooks": ["A reliable mat gives every workout a stable, comfortable base, whether the plan is yoga, stretching or bodyweight training.",
                  "Home workouts and studio classes both start the same way: by rolling out a mat.",
                  "Grip and cushioning are the two things that decide how a mat feels once practice begins."],
        "uses": ["morning yoga", "pilates classes", "stretching routines", "home workouts", "recovery stretching",
                 "travel workouts"],
        "aud": ["yoga students", "home fitness fans", "travelers who keep up a routine", "beginners", "instructors"],
        "care": ["Wipe the surface with a damp cloth and mild soap after sweaty sessions.",
                 "Let the mat dry flat before rolling it up.",
                 "Keep {obj} out of direct sun to protect the surface."],
    },
    "Sports & Outdoors > Bike Lights": {
        "types": [T("Rechargeable Bike Light Set", "Light Set", g=[110, 130, 150]),
                  T("USB-C Bike Headlight", "Headlight", g=[65, 80, 95]),
                  T("Rear Bike Tail Light", "Tail Light", g=[25, 35, 45])],
        "vals": {"lm": [400, 600, 800, 1000, 1200], "rlm": [30, 50, 80, 100], "run": [3, 5, 8, 12, 20],
                 "modes": [4, 5, 6], "ip": ["IPX5", "IPX6", "IP65"], "g": [80],
                 "color": ["Black", "Matte Black", "Gunmetal Gray", "Red and Black"]},
        "feats": [
            F(["{lm} lumen front", "{lm}lm"], "Front light puts out up to {lm} lumens", "a {lm}-lumen front beam",
              ["The front light reaches {lm} lumens on its highest mode, enough to light unlit paths and country roads.",
               "Up to {lm} lumens projects a wide, even beam that shows potholes early."],
              only=(0, 1), bit="{lm} Lumens"),
            F(["{rlm} lumen rear", "rear {rlm}lm"], "Rear light with {rlm} lumens and side visibility",
              "a {rlm}-lumen rear light",
              ["The rear unit shines at {rlm} lumens with side cutouts, making the bike visible from behind and at junctions.",
               "At {rlm} lumens, the rear light is easy to spot from a distance, and side windows add visibility at crossings."],
              only=(0, 2), bit="{rlm} Lumen Rear"),
            F(["usb-c", "usb-c rechargeable"], "USB-C rechargeable, about 2 hours to full", "USB-C charging",
              ["Each unit charges over USB-C in about two hours, so there are no batteries to replace.",
               "Charging takes roughly two hours over USB-C, from a laptop or a phone charger."],
              bit="USB-C Rechargeable"),
            F(["{run}h runtime", "runtime {run}h"], "Runs up to {run} hours in flash mode",
              "up to {run} hours of runtime",
              ["Runtime reaches {run} hours in flash mode, covering several commutes on a single charge.",
               "In flashing mode, a full charge lasts about {run} hours."]),
            F(["{modes} modes", "{modes} light modes"], "Choice of {modes} steady and flashing modes",
              "{modes} lighting modes",
              ["There are {modes} modes, from steady beams for dark roads to flashing patterns for daytime visibility.",
               "A single button cycles through {modes} modes, steady and flashing."]),
            F(["{ip}", "{ip} rated"], "{ip} weather resistance for rainy rides", "{ip} weather resistance",
              ["{ip} weather resistance keeps the lights working through spray and downpours.",
               "With an {ip} rating, the housing keeps working through wet commutes and muddy trails."], bit="{ip} Waterproof"),
            F(["tool-less mount", "strap mount"], "Tool-less silicone strap mount", "a tool-less strap mount",
              ["Silicone straps stretch around bars and seat posts of most sizes, with no tools needed.",
               "The stretchy mounts move between bikes in seconds."]),
            F(["cutoff beam", "shaped beam"], "Shaped beam that avoids dazzling oncoming traffic", "a shaped beam",
              ["A shaped beam pattern puts light on the road instead of into the eyes of oncoming riders and drivers.",
               "A cutoff beam lights the path ahead without blinding people coming the other way."],
              only=(0, 1)),
            F(["battery indicator", "low batt warning"], "Battery indicator warns before power runs low",
              "a battery indicator",
              ["A small indicator changes color when the battery is running low, so the ride home is never a surprise.",
               "A charge indicator warns well before the battery runs flat."]),
            F(["brake sensing", "auto brake light"], "Brightens automatically when braking", "brake-sensing brightness",
              ["A motion sensor detects deceleration and brightens the light when braking, warning riders behind.",
               "When the bike slows down, a built-in sensor makes the tail light flare brighter, like a brake light on a car."],
              only=(2,)),
            F(["memory mode", "mode memory"], "Remembers the last mode used", "mode memory",
              ["The light returns to the last mode used, so a single press restores a favorite setting.",
               "Mode memory means the light comes on in the same setting it was turned off in."],
              only=(0, 1)),
            F(["{g}g", "{g} grams"], "Weighs only {g} g", "a {g} g weight",
              ["At {g} grams, {it} add{s} next to nothing to the bike.",
               "A weight of {g} grams means there is no reason to take the light off between rides."]),
        ],
        "hooks": ["Being seen matters as much as seeing, especially on dark mornings and evening commutes.",
                  "Shorter days do not have to mean fewer rides when the bike is properly lit.",
                  "Good bike lights turn a nervous ride home into a relaxed one."],
        "uses": ["dark commutes", "early morning training rides", "night rides on trails", "school runs by bike",
                 "touring trips", "city errands"],
        "aud": ["commuters", "road cyclists", "students", "mountain bikers", "parents riding with kids"],
        "care": ["Wipe the lenses clean after muddy rides to keep the beam bright.",
                 "Recharge monthly in the off season to keep the battery healthy."],
    },
    "Sports & Outdoors > Hiking Backpacks": {
        "types": [T("Hiking Daypack", "Daypack", L=[18, 20, 24, 28], wt=["520 g", "640 g", "780 g"]),
                  T("Trekking Backpack", "Backpack", L=[40, 45, 55, 65], wt=["1.4 kg", "1.7 kg", "2.1 kg"]),
                  T("Hydration Backpack", "Backpack", L=[8, 10, 12, 15], wt=["310 g", "380 g", "450 g"])],
        "vals": {"L": [20], "wl": [1.5, 2, 3], "wt": ["600 g"],
                 "color": ["Slate Blue", "Forest Green", "Charcoal Black", "Burnt Orange", "Stone Gray"]},
        "feats": [
            F(["{L}l", "{L} liter"], "Main compartment of {L} liters", "a {L}-liter capacity",
              ["The {L}-liter main compartment holds layers, lunch and a first aid kit for a full day out.",
               "Inside the {L}-liter body there is space for a rain shell, a warm layer and food for the day."],
              only=(0,), bit="{L}L"),
            F(["{L}l", "{L} liters"], "Capacity of {L} liters for multi-day trips", "{L} liters of space",
              ["With {L} liters of space, there is room for a tent, a sleeping bag and food for several nights.",
               "A {L}-liter capacity carries the gear for a long weekend or a week on the trail."],
              only=(1,), bit="{L}L"),
            F(["{L}l", "{L}l pack"], "Pack body of {L} liters beside the reservoir", "a {L}-liter pack body",
              ["A {L}-liter pack body leaves room for a shell jacket, snacks and keys beside the reservoir.",
               "Besides water, the {L} liters of storage hold a light jacket and trail snacks."],
              only=(2,), bit="{L}L"),
            F(["ripstop nylon", "ripstop"], "Water-resistant ripstop nylon body", "ripstop nylon fabric",
              ["Water-resistant ripstop nylon shrugs off light rain and scrapes from rocks and branches.",
               "The ripstop nylon body resists abrasion and light showers."]),
            F(["ventilated back", "mesh back"], "Ventilated mesh back panel", "a ventilated back panel",
              ["A ventilated mesh back panel keeps air moving between the pack and the back on warm climbs.",
               "Air flows through the mesh back panel, so the back stays cooler on long ascents."]),
            F(["adj torso", "hip belt"], "Adjustable torso length and padded hip belt", "an adjustable torso",
              ["The harness adjusts to different torso lengths, and a padded hip belt moves most of the load onto the hips.",
               "An adjustable back system and a padded hip belt let the pack carry heavy loads comfortably."],
              only=(1,)),
            F(["hydration sleeve", "bladder sleeve"], "Internal sleeve fits a hydration reservoir", "a hydration sleeve",
              ["An internal sleeve and a hose port fit a hydration reservoir for sipping on the move.",
               "A reservoir sleeve and hose exit make the pack ready for a hydration bladder."], only=(0, 1)),
            F(["{wl}l reservoir", "bladder {wl}l"], "Includes a {wl} liter reservoir with bite valve",
              "a {wl}-liter reservoir",
              ["The included {wl}-liter reservoir has a wide opening for ice and a bite valve that shuts off with a twist.",
               "A {wl}-liter water reservoir comes included, with a wide mouth that makes filling and cleaning easy."],
              only=(2,), bit="{wl}L Reservoir"),
            F(["rain cover", "raincover"], "Stowaway rain cover in the base", "a built-in rain cover",
              ["A rain cover tucks into a zippered pocket in the base and stretches over the pack in a sudden shower.",
               "A built-in rain cover deploys from the bottom pocket when the weather turns."],
              only=(0, 1)),
            F(["side pockets", "bottle pockets"], "Stretch side pockets for water bottles", "stretch side pockets",
              ["Stretch side pockets hold water bottles within reach without taking the pack off.",
               "Side pockets in stretch mesh keep a bottle where it can be grabbed on the move."]),
            F(["pole loops", "trekking pole loops"], "Loops for trekking poles and an ice axe", "trekking pole loops",
              ["Loops and bungee tie-offs on the front carry trekking poles when the trail turns to scrambling.",
               "External loops hold trekking poles when both hands are needed."],
              only=(0, 1)),
            F(["sternum strap", "chest strap w/ whistle"], "Sternum strap with a built-in whistle",
              "a sternum strap with whistle",
              ["A sternum strap with a built-in whistle keeps the fit stable on bumpy descents.",
               "An adjustable chest strap carries an emergency whistle in its buckle."]),
            F(["{wt}", "weight {wt}"], "Weighs {wt} empty", "a {wt} empty weight",
              ["Empty, the pack weighs {wt}, so most of the effort goes into carrying the essentials.",
               "The pack itself weighs only {wt}."]),
            F(["sleeping bag compartment", "sb compartment"], "Separate sleeping bag compartment",
              "a sleeping bag compartment",
              ["A separate lower compartment keeps the sleeping bag apart from the rest of the gear.",
               "A zippered bottom compartment gives the sleeping bag its own space and quick access."], only=(1,)),
            F(["reflective trim", "reflective"], "Reflective trim for low light", "reflective trim",
              ["Reflective trim on the shoulder straps adds visibility on early starts and late finishes.",
               "Reflective accents on the straps catch headlamps and car lights after dark."],
              only=(2,)),
            F(["hip belt pockets", "hipbelt pockets"], "Zippered hip belt pockets for snacks", "hip belt pockets",
              ["Zippered hip belt pockets keep snacks, a phone or lip balm handy without stopping.",
               "Small pockets on the hip belt hold snacks and a phone within easy reach."], only=(0, 1)),
        ],
        "hooks": ["A pack that fits well makes the miles feel shorter, no matter the terrain.",
                  "Trail days go smoother when everything has a place and the load sits comfortably.",
                  "From short summit hikes to longer treks, the right backpack keeps essentials organized and weight balanced."],
        "uses": [("day hikes", (0, 2)), ("multi-day treks", (1,)), ("trail runs", (2,)), ("national park visits", None),
                 ("summit scrambles", (0, 2)), ("weekend travel", (0, 1)), ("hut-to-hut trips", (1,)),
                 ("backcountry camping", (1,)), ("mountain bike rides", (2,)), ("after-work hikes", (0,))],
        "aud": [("day hikers", (0, 2)), ("backpackers", (1,)), ("trail runners", (2,)), ("travelers", (0, 1)),
                ("scout leaders", None), ("thru-hikers", (1,)), ("mountain bikers", (2,))],
        "care": ["Empty the pack after each trip and hang it to air out.",
                 "Hand wash with mild soap and cold water rather than using a washing machine.",
                 ("Rinse the reservoir with warm water and let it dry open.", (2,))],
    },
    # ------------------------------------------------------------------ Automotive
    "Automotive > Interior Accessories": {
        "types": [T("All-Weather Floor Mats", "Floor Mats", True, pcs=[3, 4]),
                  T("Neoprene Seat Covers", "Seat Covers", True, pcs=[2, 4]),
                  T("Collapsible Trunk Organizer", "Trunk Organizer")],
        "vals": {"pcs": [3], "comps": [2, 3, 4], "L": [32, 48, 60],
                 "color": ["Black", "Charcoal Gray", "Tan Beige", "Black and Red", "Slate Gray"]},
        "feats": [
            F(["trim to fit", "trimmable"], "Trim-to-fit design for most cars, SUVs and trucks", "a trim-to-fit design",
              ["Guide lines on the underside make it easy to trim each mat for a close fit in cars, SUVs and trucks.",
               "Each mat can be trimmed along molded guide lines for a close fit in most vehicles."],
              only=(0,)),
            F(["{pcs}pc set", "{pcs} piece"], "Set of {pcs} mats for front and rear rows", "a {pcs}-piece set",
              ["The {pcs}-piece set covers the front footwells and the rear row.",
               "This set of {pcs} mats protects the floor in both the front and back seats."], only=(0,), bit="{pcs}-Piece Set"),
            F(["deep channels", "deep grooves"], "Deep channels trap water, mud and snow", "deep channels",
              ["Deep channels trap rain, mud and melting snow before it reaches the carpet.",
               "Grooved channels hold water and grit away from shoes and the carpet underneath."], only=(0,)),
            F(["heavy duty rubber", "flexible rubber"], "Heavy-duty rubber that stays flexible in the cold",
              "heavy-duty rubber",
              ["Heavy-duty rubber stays flexible in freezing weather and will not crack or curl in summer heat.",
               "The thick rubber compound keeps its shape through hot summers and icy winters."],
              only=(0,)),
            F(["nibbed backing", "anti-slip back"], "Nibbed backing keeps mats from sliding", "a nibbed backing",
              ["A nibbed backing grips the carpet so the mats stay put under the pedals.",
               "Small nibs on the back hold each mat in place under the driver's feet."], only=(0,)),
            F(["raised edges", "lipped edge"], "Raised outer edges contain spills", "raised edges",
              ["Raised outer edges hold spills and slush inside the mat.",
               "A raised lip around the edge keeps melted snow and spilled drinks contained."], only=(0,)),
            F(["hose clean", "easy clean"], "Rinses clean with a garden hose", "easy hose-off cleaning",
              ["Cleanup is simple: pull the mats out, hose them off and let them dry in the sun.",
               "A quick rinse with a hose is all {it} need{s} to look clean again."], only=(0,)),
            F(["neoprene", "water resistant"], "Water-resistant neoprene shell", "water-resistant neoprene",
              ["Water-resistant neoprene protects upholstery from wet swimsuits, muddy gear and coffee spills.",
               "Neoprene, the material used in wetsuits, keeps moisture from soaking through to the seats."],
              only=(1,)),
            F(["universal fit", "fits bucket seats"], "Fits most front bucket seats", "a universal bucket-seat fit",
              ["Stretch panels and adjustable straps fit most front bucket seats in cars, trucks and SUVs.",
               "Elastic panels and straps wrap snugly around most bucket seats."],
              only=(1,)),
            F(["headrest covers", "incl headrest"], "Matching headrest covers included", "matching headrest covers",
              ["Matching headrest covers complete the look and protect the fabric behind the head.",
               "Headrest covers are included to finish the look."], only=(1,)),
            F(["back pockets", "seatback pocket"], "Storage pockets on the seat backs", "seat-back pockets",
              ["Pockets on the back of each cover give rear passengers a place for tablets and water bottles.",
               "Seat-back pockets give kids in the back a place for books and snacks."],
              only=(1,)),
            F(["padded", "foam padding"], "Cushioned padding for long drives", "cushioned padding",
              ["A layer of padding adds comfort on long drives without changing the shape of the seat.",
               "Light foam padding makes long commutes a little more comfortable."], only=(1,)),
            F(["easy install", "no tools"], "Installs in about 15 minutes without tools", "tool-less installation",
              ["Installation takes about 15 minutes with hooks and straps, and no tools are required.",
               "The covers slip on and fasten with hooks and straps, no tools needed."], only=(1,)),
            F(["{pcs}pc", "{pcs} pieces"], "Set of {pcs} covers with straps and hooks", "a {pcs}-piece set",
              ["The set contains {pcs} covers along with the straps and hooks needed to fit them.",
               "Inside the box are {pcs} covers plus all of the fitting hardware."],
              only=(1,), bit="{pcs}-Piece Set"),
            F(["{comps} compartments", "{comps} sections"], "Divides into {comps} compartments", "{comps} compartments",
              ["Removable dividers split the organizer into {comps} compartments for groceries, sports gear and emergency supplies.",
               "With {comps} compartments, groceries stay upright and sports gear stays separate."],
              only=(2,), bit="{comps} Compartments"),
            F(["collapsible", "folds flat"], "Folds flat when not needed", "a collapsible frame",
              ["When the trunk needs to be clear, {it} fold{s} flat in seconds and slide{s} behind a seat.",
               "The organizer collapses flat when the whole trunk is needed for luggage."],
              only=(2,)),
            F(["non-slip base", "velcro strips"], "Non-slip base with hook-and-loop strips", "a non-slip base",
              ["Hook-and-loop strips on the base grip trunk carpet so the organizer does not slide on corners.",
               "Grip strips underneath keep it from shifting during turns and stops."],
              only=(2,)),
            F(["{L}l", "{L} liters"], "Holds {L} liters across all sections", "a {L}-liter capacity",
              ["Across all sections, {it} hold{s} {L} liters, enough for a week of groceries and a gym bag.",
               "Total capacity is {L} liters, which handles a big grocery run with space left over."],
              only=(2,), bit="{L}L Capacity"),
            F(["reinforced walls", "rigid sides"], "Reinforced side walls that hold their shape", "reinforced walls",
              ["Reinforced side walls keep their shape even when only one compartment is loaded.",
               "Stiffened panels keep the walls upright even when the bins are half empty."], only=(2,)),
            F(["tie-down straps", "anchor straps"], "Adjustable straps anchor to cargo hooks",
              "adjustable anchor straps",
              ["Adjustable straps anchor to cargo hooks for extra stability.",
               "Tie-down straps clip to the cargo hooks found in most trunks."], only=(2,)),
            F(["handles", "carry handles"], "Sturdy carry handles on each end", "sturdy carry handles",
              ["Sturdy handles on each end make it easy to lift out and carry into the house.",
               "Carry handles at both ends make moving it from car to kitchen simple."], only=(2,)),
            F(["mesh pockets", "outer pockets"], "Exterior mesh pockets for small items", "exterior mesh pockets",
              ["Exterior mesh pockets hold small items like an ice scraper, jumper cables or a tire gauge.",
               "Mesh pockets on the outside keep small tools and cleaning supplies handy."],
              only=(2,)),
        ],
        "hooks": ["A car interior takes a beating from daily life, from muddy boots to grocery runs and road-trip snacks.",
                  "Keeping a vehicle tidy is easier when everything has a place and surfaces are protected.",
                  "Small upgrades to the interior make every drive feel more organized and comfortable."],
        "uses": ["daily commuting", "family vacations by car", "grocery runs", "winter driving", "weekend sports practice",
                 "ride-share driving"],
        "aud": ["busy parents", "commuters", "pet owners", "outdoor enthusiasts", "ride-share drivers"],
        "care": ["Shake out debris regularly and wipe with a damp cloth.",
                 "Check the fit after installation and adjust straps or trimming as needed."],
    },
    "Automotive > Tire Inflators": {
        "types": [T("Portable Tire Inflator", "Tire Inflator"), T("Cordless Tire Inflator", "Tire Inflator"),
                  T("12V Air Compressor", "Air Compressor")],
        "vals": {"psi": [100, 120, 150, 160], "mah": [4000, 6000, 7800, 8000], "cord": [10, 12, 16],
                 "hose": [18, 24, 28],
                 "color": ["Black and Orange", "Matte Black", "Yellow and Black", "Red and Black", "Slate Gray"]},
        "feats": [
            F(["{psi} psi max", "{psi}psi"], "Inflates up to {psi} PSI", "a {psi} PSI maximum pressure",
              ["Maximum pressure reaches {psi} PSI, covering car, bike and motorcycle tires as well as sports balls.",
               "A {psi} PSI ceiling is more than enough for cars, SUVs, bikes and motorcycles."],
              bit="{psi} PSI"),
            F(["digital gauge", "lcd gauge"], "Digital pressure gauge with backlit display", "a backlit digital gauge",
              ["A backlit digital gauge reads pressure in PSI, BAR or KPA and stays easy to read at night.",
               "The backlit screen shows current and preset pressure side by side."],
              bit="Digital Gauge"),
            F(["auto shutoff", "preset pressure"], "Preset pressure with automatic shutoff", "automatic shutoff",
              ["Set the desired pressure and the inflator stops on its own when the tire reaches it, so there is no overfilling.",
               "Dial in the pressure once and the pump shuts off automatically when the tire gets there."]),
            F(["{mah}mah battery", "{mah} mah"], "Built-in {mah} mAh rechargeable battery", "a {mah} mAh battery",
              ["The {mah} mAh battery inflates several car tires per charge, with no cord to the dashboard.",
               "A {mah} mAh battery makes the pump fully cordless, handy for checking all four tires at a gas station."],
              only=(1,), bit="{mah}mAh Battery"),
            F(["12v plug {cord}ft", "{cord}ft cord"], "Runs from a 12V socket with a {cord} ft cord",
              "a {cord} ft power cord",
              ["{It} run{s} from the 12V socket, and the {cord} ft cord reaches all four tires on most sedans and SUVs.",
               "Power comes from the 12V socket through a {cord} ft cord that stretches to the rear wheels."],
              only=(0, 2)),
            F(["led light", "work light"], "LED work light with flashing SOS mode", "a built-in LED light",
              ["A built-in LED light helps during roadside stops after dark and has a flashing SOS mode.",
               "An LED lamp lights the valve stem at night and can flash to warn other drivers."]),
            F(["nozzles", "3 adapters"], "Includes three nozzle adapters", "three nozzle adapters",
              ["Three nozzle adapters cover bike valves, balls and inflatables.",
               "Adapters in the kit handle sports balls, pool floats and bike tires."]),
            F(["{hose}in hose", "hose {hose}in"], "Flexible {hose}-inch air hose with screw-on chuck",
              "a {hose}-inch hose",
              ["A {hose}-inch air hose with a screw-on chuck makes a tight seal on the valve stem.",
               "The screw-on chuck at the end of the {hose}-inch hose threads onto the valve for a leak-tight fit."]),
            F(["storage bag", "carry case"], "Storage bag keeps the kit together in the trunk", "a storage bag",
              ["Everything packs into a zippered storage bag that lives in the trunk.",
               "A zip case keeps the pump, cord and adapters together between uses."]),
            F(["usb out", "usb port"], "USB port doubles as a phone charger", "a USB output",
              ["A USB port lets the battery charge a phone in a pinch.",
               "The battery can also recharge a phone through its USB port."], only=(1,)),
            F(["metal cylinder", "cooling fins"], "Metal cylinder and heat-dissipating fins", "a metal cylinder",
              ["A metal cylinder and cooling fins let the compressor run longer before it needs a rest.",
               "Metal internals and cooling fins handle larger tires, such as those on trucks and RVs."], only=(2,)),
            F(["fast inflate", "quick fill"], "Raises a car tire from 30 to 36 PSI in about a minute",
              "quick inflation",
              ["Raising a standard car tire from 30 to 36 PSI takes about a minute.",
               "Topping a sedan tire from 30 to 36 PSI takes roughly sixty seconds."]),
        ],
        "hooks": ["Correct tire pressure improves handling and fuel economy, yet it is one of the most overlooked maintenance tasks.",
                  "A slow leak or a cold morning can leave a tire soft, and a portable inflator fixes it on the spot.",
                  "Keeping a reliable inflator in the trunk turns a roadside worry into a five-minute job."],
        "uses": ["monthly tire checks", "long drives", "cold-weather pressure drops", "bike and ball inflation",
                 "roadside stops", "RV and trailer tires"],
        "aud": ["daily drivers", "long-distance drivers", "cyclists with a car", "new drivers", "families with several vehicles"],
        "care": ["Let the unit cool for a few minutes between long inflation runs.",
                 "Check tire pressure with the tires cold for the most accurate reading."],
    },
    "Automotive > Car Care": {
        "types": [T("Microfiber Drying Towel", "Drying Towel", gsm=[600, 800, 1200], size_in=["25 x 36", "30 x 40"]),
                  T("Microfiber Cleaning Cloths", "Cleaning Cloths", True, gsm=[300, 350, 400],
                    size_in=["12 x 16", "16 x 16"], pack=[12, 24, 36]),
                  T("Chenille Wash Mitt", "Wash Mitt", pack=[2, 3])],
        "vals": {"gsm": [300], "size_in": ["16 x 16"], "pack": [2],
                 "color": ["Blue", "Gray and Blue", "Green", "Yellow", "Charcoal Gray"]},
        "feats": [
            F(["{gsm}gsm twisted loop", "twisted loop {gsm}gsm"], "Twisted loop weave at {gsm} GSM",
              "a {gsm} GSM twisted loop weave",
              ["A twisted loop weave at {gsm} GSM soaks up water in one pass, leaving fewer streaks on glass and paint.",
               "The {gsm} GSM twisted loop pile pulls water off paint in a single pass."],
              only=(0,), bit="{gsm} GSM"),
            F(["{size_in}in", "{size_in} inch"], "Large {size_in} inch size covers a hood in one pass",
              "a {size_in} inch size",
              ["At {size_in} inches, one towel dries an entire sedan without wringing.",
               "A {size_in} inch towel covers a full hood or roof in one pass."], only=(0,), bit='{size_in}"'),
            F(["edgeless", "laser cut edges"], "Edgeless, laser-cut borders with no stitching",
              "edgeless borders",
              ["Laser-cut edgeless borders leave no stitching to drag across clear coat.",
               "No sewn edges means nothing hard to scratch the paint."], only=(0, 1)),
            F(["low lint", "lint-free"], "Leaves no lint behind on glass", "a low-lint finish",
              ["The fibers are tightly bound, so glass and mirrors come out clean without lint.",
               "Tightly woven fibers leave windows and mirrors clear, with no fuzz left behind."]),
            F(["{gsm}gsm", "{gsm} gsm cloths"], "All-purpose {gsm} GSM cloths for interior and exterior",
              "{gsm} GSM cloths",
              ["The {gsm} GSM cloths handle dashboards, door jambs, glass and wheels.",
               "At {gsm} GSM, the cloths are plush enough for paint and tough enough for wheels."], only=(1,), bit="{gsm} GSM"),
            F(["{pack} pack", "{pack}pk"], "Pack of {pack} in {size_in} inch size", "a pack of {pack}",
              ["The pack of {pack} means a fresh cloth for every job, from glass to wheels.",
               "With {pack} cloths in the pack, there is always a clean one within reach."],
              only=(1,), bit="Pack of {pack}"),
            F(["color coded", "multi color"], "Color-coded to keep wheel and paint cloths apart",
              "color-coded cloths",
              ["Different colors help keep wheel cloths away from paint and glass.",
               "Color coding keeps greasy wheel cloths separate from the ones used on glass."], only=(1,)),
            F(["chenille fingers", "chenille"], "Chenille microfiber fingers lift dirt away from paint",
              "chenille microfiber fingers",
              ["Thick chenille fingers pull grit away from the surface instead of dragging it across the paint.",
               "Chenille strands trap dirt deep in the pile, away from the clear coat."],
              only=(2,)),
            F(["elastic cuff", "cuff"], "Elastic cuff keeps the mitt on the hand", "an elastic cuff",
              ["An elastic cuff keeps the mitt snug on the hand, even when it is heavy with suds.",
               "A stretchy wrist cuff stops the mitt from slipping off into the bucket."], only=(2,)),
            F(["holds suds", "deep pile"], "Deep pile holds plenty of soapy water", "a deep pile",
              ["The deep pile holds a generous load of soapy water, so there are fewer trips back to the bucket.",
               "Loaded with suds, the thick mitt covers a whole panel before it needs another dip."],
              only=(2,)),
            F(["{pack} pack", "set of {pack}"], "Set of {pack} mitts for wheels and paint", "a set of {pack} mitts",
              ["With {pack} mitts in the set, one can stay dedicated to wheels and the rest to paint.",
               "The {pack}-pack means one mitt for the lower panels and a clean one for the upper ones."],
              only=(2,), bit="{pack}-Pack"),
            F(["machine washable", "washable"], "Machine washable for repeated use", "machine-washable fabric",
              ["Wash on warm without fabric softener and {ref} can be used again and again.",
               "Machine washing restores the fibers, so {it} can be used wash after wash."]),
            F(["scratch safe", "paint safe"], "Soft on clear coat, glass and chrome", "a paint-friendly texture",
              ["The plush texture is gentle on clear coat, glass and chrome, so it suits every exterior surface.",
               "Soft microfiber glides over paint, chrome and glass without leaving marks."]),
            F(["super absorbent", "absorbent"], "Absorbs several times its weight in water", "high absorbency",
              ["The towel absorbs several times its own weight in water, then wrings out almost dry.",
               "A single towel holds a large amount of water, then wrings out quickly."], only=(0,)),
        ],
        "hooks": ["Most swirl marks come from washing and drying, not from the road, so the tools matter.",
                  "A careful wash routine keeps paint glossy and protects the finish over time.",
                  "Detailing at home is easier with microfiber that lifts dirt rather than grinding it in."],
        "uses": ["weekend washes", "detailing sessions", "quick interior wipe-downs", "drying after rain",
                 "wheel cleaning", "prepping for a car show"],
        "aud": ["car enthusiasts", "weekend detailers", "first-time car owners", "professional detailers",
                "anyone who washes at home"],
        "care": ["Wash microfiber separately in warm water and skip fabric softener, which clogs the fibers.",
                 "Air dry or tumble dry on low heat.",
                 "Store clean microfiber in a sealed bag to keep dust off the fibers."],
    },
    "Automotive > LED Bulbs": {
        "types": [T("LED Headlight Bulbs", "Headlight Bulbs", True, color=["Cool White", "Pure White"]),
                  T("LED Fog Light Bulbs", "Fog Light Bulbs", True, color=["Golden Yellow", "Cool White"]),
                  T("LED Interior Light Kit", "Interior Light Kit", color=["Cool White", "Warm White", "Ice Blue"])],
        "vals": {"fit": ["H11", "9005", "9006", "H7", "H4", "H13"], "lm": ["8,000", "10,000", "12,000", "16,000"],
                 "k": [6000, 6500], "pcs": [8, 10, 12, 14], "color": ["Cool White"]},
        "derive": _led,
        "feats": [
            F(["{fit}", "{fit} base"], "Plug-and-play {fit} fitment for factory sockets", "{fit} fitment",
              ["The {fit} base plugs straight into the factory socket, with no wiring changes on most vehicles.",
               "Each {fit} bulb fits the factory connector, so installation takes minutes."],
              only=(0, 1), bit="{fit}"),
            F(["{lm} lm pair", "{lm}lm"], "Output of {lm} lumens per pair", "{lm} lumens per pair",
              ["Together, the pair produces {lm} lumens with a clean, white beam.",
               "The two bulbs put out a combined {lm} lumens."], only=(0,), bit="{lm} Lumens"),
            F(["{k}k", "{k}k {color_l}"], ["{color} light at {k}K", "Color temperature of {k}K"], "{k}K {color_l} light",
              ["At {k}K, the {color_l} output gives a clean, even tone that looks modern.",
               "A {k}K color temperature produces a {color_l} light that stays consistent from bulb to bulb."],
              only=(0, 2), bit="{k}K"),
            F(["cooling fan", "fan cooled"], "Built-in cooling fan and aluminum heat sink", "active cooling",
              ["A built-in fan and aluminum heat sink carry heat away from the chips for steady output.",
               "Active cooling keeps the chips at a stable temperature, so brightness holds steady on long drives."],
              only=(0, 1)),
            F(["adjustable beam", "rotating collar"], "Adjustable collar for correct beam alignment",
              "an adjustable collar",
              ["A rotating collar lets the chips sit at the correct angle, keeping the cutoff sharp and glare down for oncoming drivers.",
               "An adjustable collar lets the bulb be clocked to the right angle for a clean beam pattern."],
              only=(0, 1)),
            F(["wide low beam", "fog pattern"], "Wide, low beam pattern for fog and rain", "a wide, low beam",
              ["Low-mounted fog bulbs light the road surface close to the car, where fog and spray are thinnest.",
               "The wide, flat beam stays low, lighting lane edges without bouncing back off fog."],
              only=(1,)),
            F(["canbus", "canbus ready"], "CANbus-ready to avoid dashboard warnings", "CANbus compatibility",
              ["A CANbus-ready driver keeps most vehicles from showing bulb-out warnings on the dashboard.",
               "Built-in CANbus support prevents error messages and flicker on most modern cars."],
              only=(0, 1)),
            F(["ip68", "sealed"], "IP68 sealed housing", "an IP68 sealed housing",
              ["An IP68 sealed housing keeps moisture and dust out of the electronics.",
               "Sealed to IP68, the bulbs resist water and dust inside the headlight housing."], only=(0, 1)),
            F(["{pcs} bulbs", "{pcs}pc kit"], "Kit of {pcs} bulbs for dome, map and trunk lights",
              "{pcs} interior bulbs",
              ["The kit includes {pcs} bulbs in the common sizes for dome, map, door and trunk lights.",
               "With {pcs} bulbs in several sizes, the kit covers most of the cabin."],
              only=(2,), bit="{pcs}-Piece Kit"),
            F(["pry tool", "trim tool"], "Trim removal tool included", "a trim removal tool",
              ["A plastic pry tool comes in the kit, so lens covers come off without scratching the trim.",
               "The included trim tool pops lens covers off cleanly."],
              only=(2,)),
            F(["low heat", "runs cool"], "Runs cool to protect lens covers", "low-heat operation",
              ["LEDs run much cooler than incandescent bulbs, so lens covers do not discolor over time.",
               "Because LEDs produce little heat, plastic covers stay clear."],
              only=(2,)),
            F(["polarity", "reversible polarity"], "Reversible polarity for easy fitting", "reversible polarity",
              ["Reversible polarity means each bulb lights no matter which way it is inserted.",
               "The bulbs work in either orientation, so there is no trial and error."], only=(2,)),
            F(["low draw", "low power"], "Low power draw eases the load on the battery", "low power draw",
              ["Low power draw means a door left ajar is less likely to drain the battery overnight.",
               "Drawing very little current, the LEDs are easy on the car battery."], only=(2,)),
            F(["long life", "50k hr life"], "Designed for a long service life", "a long service life",
              ["Solid-state chips are designed for a service life measured in tens of thousands of hours.",
               "LED chips last far longer than halogen filaments, so replacements are rare."]),
        ],
        "hooks": ["Clear, bright lighting makes night driving less tiring and helps the car be seen.",
                  "Swapping aging halogen bulbs for LEDs is one of the simplest upgrades a driver can make.",
                  "Lighting affects both visibility and the overall look of a vehicle, inside and out."],
        "uses": [("night driving", (0, 1)), ("rural roads", (0, 1)), ("rainy commutes", (0, 1)), ("late-night returns", None),
                 ("long drives after dark", (0, 1)), ("finding items in the cabin", (2,)),
                 ("loading the trunk at night", (2,)), ("reading maps in the car", (2,)), ("camping in the car", (2,))],
        "aud": [("daily commuters", (0, 1)), ("night-shift workers", None), ("DIY car owners", None),
                ("long-distance drivers", (0, 1)), ("truck and SUV owners", None)],
        "care": ["Check local regulations on headlight color before installing.",
                 "Test each bulb before reassembling the trim or headlight cover.",
                 "Aim the headlights against a wall after installation to confirm the beam height."],
    },
    # ------------------------------------------------------------------ Pet Supplies
    "Pet Supplies > Beds": {
        "types": [T("Memory Foam Dog Bed", "Dog Bed"), T("Round Plush Pet Bed", "Pet Bed"),
                  T("Elevated Dog Cot", "Dog Cot")],
        "vals": {"size": ["Small", "Medium", "Large", "Extra Large"], "diam": [20, 24, 30, 36],
                 "lb": [40, 60, 90, 120],
                 "color": ["Charcoal Gray", "Mocha Brown", "Cream White", "Navy Blue", "Sage Green"]},
        "derive": _pet_bed,
        "bits": ["{size}"],
        "raw_extra": ["size {size_l}"],
        "feats": [
            F(["memory foam base", "memory foam"], "Memory foam base that spreads weight evenly",
              "a memory foam base",
              ["A thick memory foam base spreads weight evenly, which older and larger dogs appreciate.",
               "Memory foam shapes itself to the dog's body, easing pressure on hips and shoulders."], only=(0,)),
            F(["bolsters", "3-side bolster"], "Raised bolsters on three sides", "raised bolsters",
              ["Raised bolsters on three sides give dogs a place to rest their head and lean against.",
               "Bolsters around three edges make a natural pillow for dogs who like to curl up."], only=(0,)),
            F(["removable cover", "zip cover"], "Removable, machine-washable cover", "a removable cover",
              ["The cover unzips and goes straight into the washing machine.",
               "A zippered cover comes off for washing, which keeps the bed smelling fresh."], only=(0,)),
            F(["non-slip bottom", "grip base"], "Non-slip bottom keeps the bed in place", "a non-slip bottom",
              ["A non-slip bottom keeps the bed from sliding on wood or tile floors.",
               "Grippy dots underneath hold the bed still when a dog jumps in."], only=(0, 1)),
            F(["{dims}in", "{dims}"], "Measures {dims} inches", "a {dims} inch footprint",
              ["The {size_l} size measures {dims} inches, giving room to stretch out.",
               "Sized at {dims} inches, the {size_l} bed lets a dog sprawl out on its side."], only=(0, 2), bit='{dims}"'),
            F(["{diam}in round", "{diam} inch"], "Round {diam}-inch design with a raised rim", "a round {diam}-inch design",
              ["The round {diam}-inch shape with a raised rim invites cats and small dogs to curl up.",
               "At {diam} inches across, the round bed gives small pets a snug, enclosed place to nap."],
              only=(1,), bit='{diam}"'),
            F(["faux fur", "plush fur"], "Soft faux fur surface", "soft faux fur",
              ["Long faux fur feels soft and warm, giving pets a cozy nest on cool nights.",
               "The shaggy faux fur surface is soft to the touch and holds body warmth."], only=(1,)),
            F(["loft fill", "fiber fill"], "Plump fiber fill that springs back", "plump fiber fill",
              ["Plump fiber fill springs back after naps and holds the rim upright.",
               "Polyester fill keeps the bed lofty, so it does not flatten after a few weeks."], only=(1,)),
            F(["washable", "whole bed washable"], "Whole bed is machine washable", "a fully washable build",
              ["The whole bed goes in the washing machine on a gentle cycle.",
               "No disassembly needed: the entire bed can be machine washed."], only=(1,)),
            F(["lightweight", "light"], "Lightweight and easy to move between rooms", "a lightweight build",
              ["The bed is light enough to move from the living room to the bedroom in one hand.",
               "Light and easy to carry, the bed can follow a pet from room to room."], only=(1,)),
            F(["mesh fabric", "breathable mesh"], "Breathable mesh bed surface", "a breathable mesh surface",
              ["A breathable mesh surface lets air flow underneath, keeping dogs cooler on warm days.",
               "Taut mesh fabric lets air circulate beneath the dog, helpful in summer."], only=(2,)),
            F(["steel frame {lb}lb", "holds {lb}lb"], "Powder-coated steel frame holds up to {lb} lb",
              "a steel frame",
              ["The powder-coated steel frame supports dogs up to {lb} pounds.",
               "A steel frame with a powder coat carries dogs weighing up to {lb} pounds."], only=(2,), bit="Holds {lb} lb"),
            F(["raised off floor", "elevated"], "Raised design keeps pets off cold or damp ground", "a raised design",
              ["Raised about seven inches off the ground, the cot keeps dogs away from cold tiles, damp grass and drafts.",
               "The cot lifts dogs off the ground, away from dirt, damp and cold floors."],
              only=(2,)),
            F(["no tools assembly", "snap together"], "Assembles in minutes without tools", "tool-less assembly",
              ["The frame snaps together in minutes, without tools.",
               "Assembly is quick, with no tools required."], only=(2,)),
            F(["indoor outdoor", "in/outdoor"], "Suitable for indoor and outdoor use", "indoor and outdoor use",
              ["The cot works on a patio, at a campsite or in the living room.",
               "It is equally handy on the deck, in the yard or on a camping trip."], only=(2,)),
            F(["water resistant liner", "liner"], "Water-resistant liner protects the foam",
              "a water-resistant liner",
              ["A water-resistant liner under the cover protects the foam from accidents and spills.",
               "An inner liner keeps spills and accidents away from the foam core."], only=(0,)),
        ],
        "hooks": ["Dogs and cats spend much of the day resting, so a comfortable bed is one of the most used things in the house.",
                  "A dedicated bed gives a pet a place of its own and keeps fur off the sofa.",
                  "Pets sleep better with support that suits their size and sleeping style."],
        "uses": ["afternoon naps", "overnight sleep", "crate training", "car trips", "patio lounging",
                 "rest after long walks"],
        "aud": ["dog owners", "cat owners", "owners of senior pets", "families with puppies", "multi-pet households"],
        "care": ["Vacuum the surface weekly to lift loose fur.",
                 "Wash the cover on a gentle cycle and air dry to keep its shape.",
                 "Spot clean with mild soap between washes."],
    },
    "Pet Supplies > Leashes & Collars": {
        "types": [T("Reflective Nylon Dog Leash", "Dog Leash"), T("Padded Dog Collar", "Dog Collar"),
                  T("Adjustable Dog Harness", "Dog Harness")],
        "vals": {"ft": [4, 5, 6], "mm": [15, 20, 25], "size": ["Small", "Medium", "Large"],
                 "color": ["Navy Blue", "Coral Red", "Forest Green", "Black", "Bright Orange", "Royal Purple"]},
        "derive": _collar,
        "feats": [
            F(["{ft}ft", "{ft} foot"], "Length of {ft} feet", "a {ft}-foot length",
              ["The {ft}-foot length gives dogs room to sniff around while staying close at crossings.",
               "A {ft}-foot leash gives enough slack for exploring while keeping the dog nearby."],
              only=(0,), bit="{ft} ft"),
            F(["reflective stitching", "reflective"], "Reflective stitching for low-light walks",
              "reflective stitching",
              ["Reflective stitching catches headlights on early morning and evening walks.",
               "Reflective thread along the webbing makes both dog and walker easier to see after dark."]),
            F(["padded handle", "neoprene handle"], "Neoprene-padded handle", "a padded handle",
              ["A neoprene-padded handle stays comfortable when a strong dog pulls.",
               "The handle is lined with soft neoprene, so it does not dig into the palm."], only=(0,)),
            F(["traffic handle", "2nd handle"], "Second handle near the clip for close control", "a traffic handle",
              ["A second handle near the clip gives close control at busy intersections.",
               "A traffic handle close to the collar helps keep the dog at heel when passing other dogs."], only=(0,)),
            F(["swivel clip", "swivel snap"], "Rust-resistant swivel clip", "a swivel clip",
              ["A rust-resistant swivel clip prevents tangles as the dog changes direction.",
               "The swivel snap turns smoothly, so the leash stays untwisted."], only=(0, 1)),
            F(["{mm}mm webbing", "{mm}mm nylon"], "Durable {mm} mm nylon webbing", "{mm} mm nylon webbing",
              ["Dense {mm} mm nylon webbing holds up to daily walks, rain and mud.",
               "Tough {mm} mm webbing handles pulling, rain and mud without fraying."], bit="{mm}mm Wide"),
            F(["quick release buckle", "qr buckle"], "Quick-release buckle with a locking clip",
              "a quick-release buckle",
              ["A quick-release buckle snaps on and off in a second, and a locking clip keeps it closed.",
               "The buckle clicks shut and opens with one squeeze."],
              only=(1,)),
            F(["neoprene padding", "padded"], "Soft neoprene padding on the inside", "neoprene padding",
              ["Soft neoprene lining cushions the neck or chest and dries quickly after a swim.",
               "Neoprene padding keeps the straps from rubbing, even after a day at the lake."], only=(1, 2)),
            F(["fits {neck}in", "neck {neck}"], "Adjusts to fit necks from {neck} inches", "an adjustable fit",
              ["The collar adjusts to fit necks from {neck} inches.",
               "Fit ranges from {neck} inches around the neck."], only=(1,), bit="Size {size}"),
            F(["d-ring", "steel d ring"], "Welded steel D-ring for leash and tags", "a welded D-ring",
              ["A welded steel D-ring holds the leash and ID tags.",
               "The sturdy D-ring is welded closed, so it will not pull open under tension."], only=(1, 2)),
            F(["front clip", "front + back clip"], "Front and back leash attachment points",
              "two leash attachment points",
              ["Front and back attachment points give options for relaxed walks and for dogs still learning not to pull.",
               "Clip the leash at the chest to discourage pulling, or at the back for easy strolls."],
              only=(2,)),
            F(["chest {chest}in", "4 adjust points"], "Adjusts to fit chests from {chest} inches",
              "four adjustment points",
              ["Four adjustment points fit chests from {chest} inches and let the harness sit snugly without rubbing behind the legs.",
               "With four points of adjustment, the harness fits chests from {chest} inches."],
              only=(2,), bit="Size {size}"),
            F(["grab handle", "back handle"], "Grab handle on the back", "a grab handle",
              ["A sturdy handle on the back helps lift a dog over obstacles or guide them into the car.",
               "The back handle is handy for helping a dog over logs or into the back seat."], only=(2,)),
        ],
        "hooks": ["Daily walks are the highlight of most dogs' days, and the right gear keeps them comfortable and under control.",
                  "Good walking gear balances comfort for the dog with control for the person holding the leash.",
                  "Walks are better for everyone when the gear fits well and stays visible after dark."],
        "uses": ["daily walks", "training sessions", "hikes with the dog", "trips to the park", "evening strolls",
                 "vet visits"],
        "aud": ["new puppy owners", "owners of energetic dogs", "dog walkers", "families", "dogs who love the trail"],
        "care": ["Hand wash in warm soapy water and air dry.",
                 "Check buckles and stitching regularly for wear.",
                 "Check the fit regularly; two fingers should slide under the strap."],
    },
    "Pet Supplies > Bowls & Feeders": {
        "types": [T("Stainless Steel Dog Bowls", "Dog Bowls", True, color=["Brushed Silver"]),
                  T("Slow Feeder Dog Bowl", "Slow Feeder Bowl"), T("Elevated Pet Feeder", "Pet Feeder")],
        "vals": {"oz": [16, 24, 32, 48], "cups": [2, 3, 4], "height": [4, 8, 12],
                 "color": ["Sage Green", "Slate Blue", "Black", "Walnut Brown", "Coral Pink", "Teal Blue"]},
        "feats": [
            F(["{oz}oz each", "{oz} oz"], "Each bowl holds {oz} ounces", "{oz}-ounce bowls",
              ["Each bowl holds {oz} ounces, enough for a full meal or a day of water for a medium dog.",
               "With {oz} ounces per bowl, a full meal fits without spilling over the rim."],
              only=(0,), bit="{oz} oz"),
            F(["stainless steel", "ss bowls"], "Brushed stainless steel bowls", "stainless steel bowls",
              ["Brushed stainless steel resists dents, does not hold odors and cleans up quickly.",
               "Stainless steel is tough, does not scratch easily and rinses clean in seconds."], only=(0, 2)),
            F(["rubber base", "silicone ring"], "Removable silicone base prevents sliding", "a non-skid silicone base",
              ["A removable silicone ring underneath keeps the bowls from sliding across the floor as dogs eat.",
               "Silicone bases grip the floor and cut down on the clatter at mealtime."],
              only=(0,)),
            F(["no-tip rim", "wide base"], "Wide rim and low profile resist tipping", "a wide rim",
              ["A wide rim and low profile make the bowls hard to tip over.",
               "Low, wide bowls stay upright even when a dog noses them around."], only=(0,)),
            F(["set of 2", "2 bowls"], "Set of two bowls for food and water", "a set of two bowls",
              ["The set of two covers food and water side by side.",
               "Two bowls mean food and water sit side by side."], only=(0,), bit="Set of 2"),
            F(["dishwasher safe", "dw safe"], "Dishwasher-safe for easy cleaning", "dishwasher-safe construction",
              ["{Ref} can go in the dishwasher, which makes daily cleaning simple.",
               "Cleanup is quick, since {it} can go straight into the dishwasher."], only=(0, 1)),
            F(["maze pattern", "slow feed maze"], "Maze pattern slows fast eaters", "a maze pattern",
              ["A raised maze pattern makes dogs work around the ridges, slowing meals that would otherwise disappear in seconds.",
               "Ridges and channels turn dinner into a small puzzle, so a meal takes minutes instead of seconds."],
              only=(1,)),
            F(["{cups} cups", "{cups} cup"], "Holds up to {cups} cups of dry food", "a {cups}-cup capacity",
              ["The bowl holds up to {cups} cups of dry food, suiting small to large breeds.",
               "Capacity reaches {cups} cups of kibble."],
              only=(1,), bit="{cups}-Cup Capacity"),
            F(["non-slip base", "grip base"], "Non-slip base stays put", "a non-slip base",
              ["A non-slip base keeps the bowl in place, even with an enthusiastic eater.",
               "A rubberized bottom stops the bowl from sliding across the floor."], only=(1,)),
            F(["wet or dry", "kibble/wet"], "Works with kibble, wet food and raw diets", "versatile feeding",
              ["The pattern works with kibble, wet food or a mix, and it can double as a lick mat for treats.",
               "Use it for dry food, wet food or a spread of something tasty for enrichment."],
              only=(1,)),
            F(["bright color", "colorful"], "Bright color that is easy to spot", "a bright finish",
              ["The bright finish makes the bowl easy to find in the kitchen or the yard.",
               "A cheerful color makes it easy to spot."], only=(1,)),
            F(["{height}in raised", "{height} inch stand"], "Raised {height}-inch stand for comfortable posture",
              "a {height}-inch raised stand",
              ["A {height}-inch stand lifts the bowls closer to the dog's chest, so there is less bending at mealtimes.",
               "Raised {height} inches, the bowls sit at a comfortable height for eating and drinking."],
              only=(2,), bit='{height}" Tall'),
            F(["bamboo stand", "bamboo"], "Bamboo stand with a water-resistant finish", "a bamboo stand",
              ["The bamboo stand has a water-resistant finish that wipes clean after messy drinkers.",
               "Sealed bamboo looks warm in a kitchen and wipes dry easily."], only=(2,)),
            F(["2 bowls {oz}oz", "two bowls"], "Two removable bowls of {oz} ounces each", "two removable bowls",
              ["Two removable {oz}-ounce bowls lift out for washing and refilling.",
               "Both {oz}-ounce bowls lift out for cleaning."], only=(2,), bit="2 Bowls"),
            F(["non-slip feet", "rubber feet"], "Rubber feet grip the floor", "rubber feet",
              ["Rubber feet grip tile and wood floors and stop the stand from scooting.",
               "Rubber feet keep the feeder steady on smooth floors."], only=(2,)),
            F(["easy assembly", "no tools"], "Assembles in minutes with no tools", "tool-less assembly",
              ["The stand slots together in a few minutes with no tools.",
               "Setup takes a couple of minutes, with no tools."], only=(2,)),
        ],
        "hooks": ["Mealtime is a highlight of any pet's day, and the right bowl keeps it tidy and comfortable.",
                  "Bowls get used twice a day or more, so they should be sturdy, easy to clean and sized correctly.",
                  "A thoughtful feeding setup reduces spills, noise and mess around the food area."],
        "uses": ["daily meals", "fresh water through the day", "slowing down fast eaters", "busy mornings",
                 "mealtime routines", "feeding more than one pet"],
        "aud": ["dog owners", "cat owners", "owners of large breeds", "households with more than one pet",
                "new pet parents"],
        "care": ["Wash bowls daily in warm soapy water.",
                 "Dry thoroughly before refilling to keep the area tidy.",
                 "Check rubber parts now and then and replace them if they wear."],
    },
}

# ---------------------------------------------------------------------------
# Phrase templates (tone-specific). Placeholders: {brand} {model} {type_l} {head_l}
# {f1_n} {f2_n} {f3_n} {use1} {use2} {use3} {aud} {Aud} {color_l}; grammar helpers
# {It} {it} {obj} {its} {s} {es} {is} {has} {this}; {ref}/{Ref} pick a fresh reference.
# ---------------------------------------------------------------------------

INTROS = {
    "professional": [
        "The {brand} {model} {type_l} {is} built for {use1} and {use2}, with a feature set that stays practical from the first day.",
        "{brand} developed the {model} {type_l} for {aud} who want dependable performance without added complexity.",
        "Designed for {use1}, the {brand} {model} {type_l} combine{s} {f1_n} with {f2_n}.",
        "With {f1_n} and {f2_n}, the {model} {type_l} from {brand} cover{s} the essentials for {use1}.",
        "The {model} {type_l} brings {f1_n}, {f2_n} and a considered design to {use1}.",
        "{brand} approaches the {model} {type_l} with a clear goal: reliable everyday performance for {use1}.",
        "For {aud}, the {brand} {model} {type_l} provide{s} a straightforward combination of {f1_n} and {f2_n}.",
        "The {brand} {model} {type_l} {is} a practical choice for {use1}, pairing {f1_n} with {f2_n}.",
    ],
    "friendly": [
        "Meet the {brand} {model} {type_l}, made for {use1}, {use2} and everything in between.",
        "If your week includes {use1}, the {brand} {model} {type_l} {is} ready to help.",
        "Say hello to the {model} {type_l} from {brand}, with {f1_n} and {f2_n} to keep things easy.",
        "The {brand} {model} {type_l} {is} here to make {use1} feel a bit more relaxed, thanks to {f1_n}.",
        "You'll notice the difference the first time you bring the {brand} {model} {type_l} along for {use1}.",
        "From {use1} to {use2}, the {brand} {model} {type_l} {is} an easy companion, pairing {f1_n} with {f2_n}.",
        "There's a lot to like about the {brand} {model} {type_l}, starting with {f1_n}.",
        "The {model} {type_l} by {brand} keep{s} things simple: {f1_n}, {f2_n} and a design that feels good from day one.",
    ],
    "technical": [
        "The {brand} {model} {type_l} pair{s} {f1_n} with {f2_n}, giving {aud} a clear set of specifications to work with.",
        "Key specifications for the {brand} {model} {type_l} start with {f1_n} and {f2_n}.",
        "Engineered for {use1}, the {model} {type_l} from {brand} combine{s} {f1_n}, {f2_n} and {f3_n}.",
        "On paper and in practice, the {brand} {model} {type_l} {is} defined by {f1_n} and {f2_n}.",
        "The {brand} {model} {type_l} {is} specified around {f1_n}, with {f2_n} rounding out the core feature set.",
        "At the core of the {brand} {model} {type_l} sits {f1_n}, supported by {f2_n} and {f3_n}.",
        "The {model} {type_l} from {brand} {is} designed to measurable goals: {f1_n}, {f2_n} and {f3_n}.",
        "For {aud}, the details that matter on the {brand} {model} {type_l} are {f1_n} and {f2_n}.",
    ],
    "luxury": [
        "The {brand} {model} {type_l} brings a refined sensibility to {use1}, with {f1_n} and careful attention to finish.",
        "Understated and carefully resolved, the {brand} {model} {type_l} {is} made for those who notice the details.",
        "Every element of the {brand} {model} {type_l} has been considered, from {f1_n} to {f2_n}.",
        "{brand} crafted the {model} {type_l} for those who value restraint, comfort and lasting materials.",
        "With {f1_n} and a finish in {color_l}, the {brand} {model} {type_l} elevate{s} {use1} into something quietly special.",
        "Refined in form and thoughtful in function, the {model} {type_l} from {brand} pair{s} {f1_n} with {f2_n}.",
        "The {brand} {model} {type_l} {is} an exercise in considered design, where {f1_n} meets an elegant {color_l} finish.",
        "Quietly confident, the {brand} {model} {type_l} bring{s} {f1_n} and {f2_n} together in a composed, graceful package.",
    ],
    "casual": [
        "Meet your new go-to for {use1}: the {brand} {model} {type_l}.",
        "The {brand} {model} {type_l} keep{s} it simple, with {f1_n}, {f2_n} and nothing you don't need.",
        "Need something that just works for {use1}. The {brand} {model} {type_l} {has} you covered.",
        "Here's the short version: the {brand} {model} {type_l} bring{s} {f1_n}, {f2_n} and a no-nonsense design.",
        "Take the {brand} {model} {type_l} along for {use1} and you won't think twice about {obj}.",
        "Nothing fancy, just solid: the {brand} {model} {type_l} with {f1_n} and {f2_n}.",
        "The {model} {type_l} from {brand} {is} the kind of everyday essential that quietly gets the job done.",
        "Whether it's {use1} or {use2}, the {brand} {model} {type_l} fit{s} right in.",
    ],
}

CONNECTORS = {
    "professional": ["In addition, ", "Beyond that, ", "Meanwhile, ", "Equally important, ", "Likewise, "],
    "friendly": ["Plus, ", "And ", "What's more, ", "Better still, ", "Even nicer, "],
    "technical": ["Additionally, ", "Furthermore, ", "In addition, ", "Also, ", "Notably, "],
    "luxury": ["Elsewhere, ", "Just as thoughtfully, ", "Beyond this, ", "In the same spirit, ", "In the same way, "],
    "casual": ["Plus, ", "Also, ", "Oh, and ", "Bonus: ", "And yes, "],
}

USE_SENTENCES = [
    "{Ref} suit{s} {use1}, {use2} and {use3} equally well.",
    "Typical uses include {use1}, {use2} and {use3}.",
    "{It} work{s} well for {use1} and just as well for {use2}.",
    "Whether the plan is {use1} or {use2}, {it} handle{s} the job without fuss.",
    "{Aud} in particular will appreciate how {ref} handle{s} {use1}.",
    "From {use1} to {use2}, {it} adapt{s} to the task at hand.",
    "{It} {is} equally suited to {use1} and {use2}.",
    "{It} {is} a practical match for {aud} and anyone planning {use1}.",
    "The design makes sense for {aud}, especially when {use1} and {use2} fill the calendar.",
    "Expect {obj} to earn a regular place in the routine, from {use1} to {use3}.",
    "Day to day, {ref} move{s} from {use1} to {use2} without any fuss.",
    "{It} {is} just as useful for {use1} as for {use2}.",
]

EXTRA_SENTENCES = [
    "Every detail, from {f2_n} to {f3_n}, serves a practical purpose.",
    "The overall design stays focused on what matters for {use2}.",
    "Small touches such as {f3_n} add up over months of regular use.",
    "{Aud} will find that {it} fit{s} easily into an existing routine.",
    "{It} {is} ready to use straight out of the package, with nothing complicated to set up.",
    "Taken together, {f1_n} and {f3_n} make {obj} easy to live with day after day.",
    "None of it feels like an afterthought, which is what makes {obj} easy to recommend for {use3}.",
    "The details are practical rather than flashy, and they show up in daily use.",
    "{Ref} {is} straightforward to use, so the focus stays on {use2} rather than on the gear.",
    "It all adds up to a dependable piece of kit for {aud}.",
    "Nothing here is complicated, and that is a large part of the appeal.",
    "Paired with {f2_n}, the {color_l} finish makes {obj} look as considered as {it} feel{s}.",
    "This mix of {f1_n} and everyday practicality suits {aud} well.",
]

CLOSINGS = {
    "professional": [
        "Finished in {color_l}, the {brand} {model} {head_l} {is} a dependable addition for {aud}.",
        "The {color_l} finish keeps the look neat and understated in any setting.",
        "In short, the {model} {head_l} provide{s} consistent, well-considered performance for {use1}.",
        "Taken together, these details make the {model} {head_l} a sensible choice for {aud}.",
        "The result is a well-balanced design in {color_l} that fits neatly into everyday routines.",
        "With {f1_n} at its core, the {model} {head_l} {is} built to stay useful season after season.",
    ],
    "friendly": [
        "Choose the {color_l} finish and make {use1} a little more enjoyable.",
        "The {color_l} finish is a nice touch, and it looks great next to the rest of your gear.",
        "All in all, the {model} {head_l} {is} an easy, cheerful pick for {aud}.",
        "Once you've tried {obj} for {use1}, you'll wonder how you managed before.",
        "Friendly to use and easy to live with, {it} {is} ready for whatever your week brings.",
        "In {color_l}, {it} look{s} as good as {it} work{s}.",
    ],
    "technical": [
        "Finish: {color_l}. All listed figures reflect the {model} configuration described here.",
        "Together, these specifications make the {model} {head_l} a well-defined option for {aud}.",
        "The {color_l} finish completes a build that puts function ahead of decoration.",
        "For {use1}, the combination of {f1_n} and {f2_n} is the deciding factor.",
        "Summary: {f1_n}, {f2_n}, and a {color_l} finish.",
        "Measured against everyday demands such as {use1}, the {model} {head_l} perform{s} consistently.",
    ],
    "luxury": [
        "Finished in {color_l}, the {model} {head_l} {is} as composed in appearance as {it} {is} in use.",
        "The {color_l} finish adds a quiet elegance that rewards a closer look.",
        "{It} {is} the kind of piece one keeps for years, valued as much for {its} feel as for {its} function.",
        "For {aud}, the {brand} {model} brings a refined approach to {use1}.",
        "Presented in {color_l}, {it} bring{s} calm, considered style to {use1}.",
        "In the end, the {model} {head_l} {is} defined by restraint, comfort and care.",
    ],
    "casual": [
        "Grab {obj} in {color_l} and get on with your day.",
        "Simple, sturdy and easy to like. That's the {model} {head_l} in a nutshell.",
        "The {color_l} color looks sharp, too.",
        "Bottom line: {it} do{es} the job for {use1} and then some.",
        "No fuss, no drama, just {f1_n} and {f2_n} when you need them.",
        "Keep {obj} handy for {use1} and you'll be set.",
    ],
}

LIST_HEADERS = ["Key details", "Highlights at a glance", "Features & details", "What stands out",
                "Specs & highlights", "At a glance", "Feature summary", "Quick facts"]

# ---------------------------------------------------------------------------
# Defect tables (only ever used for BAD samples)
# ---------------------------------------------------------------------------

DEFECT_KINDS = ["title_short", "title_long", "few_features", "many_features", "long_feature",
                "thin_description", "promo", "price", "shipping", "contact", "retailer", "claims",
                "caps_title", "special_chars", "repeat_title", "unsafe_html", "placeholder_feature",
                "testimonial"]
DEFECT_GROUP = {"title_short": "title", "title_long": "title", "caps_title": "title",
                "special_chars": "title", "repeat_title": "title", "few_features": "feats",
                "many_features": "feats", "long_feature": "feats", "placeholder_feature": "feats",
                "thin_description": "desc"}

# How each defect fails the rubric. A gate defect fails a hard gate on its own (title length,
# feature count or length, description words) or is a hard fail that caps the score at 59
# (promotional text, contact details). A minor defect only costs its rule's points; a sample
# whose defects are all minor combines rules worth more than 20 points, so that its score ends
# under the pass score of 80. Every BAD sample fails the rubric.
GATE_DEFECTS = ["title_short", "title_long", "few_features", "many_features", "long_feature",
                "thin_description", "promo", "contact"]
MINOR_RULES = {"price": ("X-COMMERCE", 6), "shipping": ("X-COMMERCE", 6), "retailer": ("X-RETAIL", 4),
               "claims": ("X-CLAIMS", 6), "testimonial": ("X-LANG", 2), "caps_title": ("T-CASE", 4),
               "special_chars": ("T-CHR", 5), "repeat_title": ("T-REP", 5), "unsafe_html": ("D-HTML", 4),
               "placeholder_feature": ("F-FMT", 4)}
PASS_SCORE = 80
# BAD samples by plan: one gate defect alone; a gate defect with one or two more defects; minor
# defects only (three to six of them, from different rules, worth at least 21 points).
N_GATE_ONLY = 105
N_GATE_PLUS = 55

PROMO_PHRASES = ["Best seller in its category.", "Top rated by thousands of shoppers.",
                 "Premium quality at every step.", "The #1 best-selling choice for {aud}.", "Hot sale this week only.",
                 "Limited time offer, don't miss this deal.", "Amazing value you will not find anywhere else.",
                 "An unbeatable must-have for {use1}."]
PRICE_PHRASES = ["Now only $29.99.", "Yours for only 19 dollars.", "Was $49.99, now $34.99.",
                 "Just $14.95 for this week.", "Only 39.99 USD today."]
SHIPPING_PHRASES = ["Free shipping on every order.", "In stock now and ships in 24 hours.",
                    "Order today for next-day delivery.", "Ships within 2 business days, free shipping included.",
                    "Available now while stocks last."]
CONTACT_PHRASES = ["Visit www.{domain}.com for the full catalog.", "Questions? Email support@{domain}.com.",
                   "Call 1-800-555-01{nn} for help with sizing.", "See https://{domain}.com/deals for more.",
                   "Text (555) 014-01{nn} to reach the team."]
RETAILER_PHRASES = ["Also sold at Walmart and Target.", "Compare with similar items on Amazon.",
                    "The same model sells on eBay for more.", "A favorite at Best Buy stores.",
                    "Loved by Costco members everywhere."]
CLAIM_PHRASES = ["100% guaranteed or your money back.", "FDA approved materials throughout.",
                 "Eco-friendly and non-toxic.", "Antibacterial finish keeps germs away.", "Proudly Made in USA.",
                 "Authentic brand product, not a knock-off.", "Hypoallergenic and BPA-free.",
                 "Clinically proven comfort."]
TESTIMONIAL_PHRASES = ["Customers say it is the most comfortable {head_l} they have owned.",
                       "\"Five stars, would buy again,\" writes one reviewer.",
                       "5 stars! Everyone in the family loves it.",
                       "Customers love how easy it is to use, rated 4.9 out of 5.",
                       "Reviewers say it is worth every penny.", "I bought two and highly recommend it."]
TITLE_INSERTS = {
    "promo": [" - Best Seller", " #1 Top Rated", " Premium Quality", " - Hot Sale"],
    "price": [" - Only $19.99", " $24.99 Deal"],
    "shipping": [" - Free Shipping", " (In Stock, Ships Today)"],
    "retailer": [" - Walmart Exclusive", " Amazon Choice"],
    "claims": [" - Made in USA", " Eco-Friendly Non-Toxic", " FDA Approved"],
    "contact": [" - www.{domain}.com"],
    "testimonial": [" - 5 Stars Reviews"],
}
FEATURE_INSERTS = {
    "promo": ["Top rated by shoppers", "Premium quality materials", "Best seller in its class"],
    "price": ["Great value at only $19.99", "Priced under 30 dollars"],
    "shipping": ["Free shipping on all orders", "In stock and ships in 24 hours"],
    "retailer": ["Same item sold at Target", "Amazon favorite"],
    "claims": ["FDA approved materials", "Eco-friendly and non-toxic", "100% guaranteed satisfaction"],
    "contact": ["Support at help@{domain}.com", "Call 1-800-555-01{nn} for support"],
    "testimonial": ["Customers say it is life changing", "5 stars from buyers"],
}
UNSAFE_HTML = ['<script>trackView("{sku}")</script>',
               '<p>See more colors <a href="https://{domain}.com/{sku}">here</a>.</p>',
               '<img src="https://cdn.{domain}.com/{sku}.jpg" alt="{name}">',
               '<a href="https://{domain}.com">{name}</a>']
SPECIAL_MARKS = ["!!!", "***", "~", "$", "\u2122", "\u00ae", "\U0001F525", "\u2b50", "\u2605"]
PLACEHOLDERS = ["N/A", "TBD", "Material: TBD", "Dimensions: N/A", "TBA", "Feature 5: TBD"]
FILLER_FEATURES = ["Modern look that fits any space", "Simple to use right away", "Makes a thoughtful gift",
                   "Sturdy construction", "Lightweight and portable", "Easy to clean", "Classic design",
                   "Great for everyday use", "Suitable for adults", "Comes in a gift box"]

# ---------------------------------------------------------------------------
# Feedback phrase tables
# ---------------------------------------------------------------------------

POSITIVE_COMMENTS = ["Great, used as is.", "Published without edits.", "Clean title and solid feature list.",
                     "Description is detailed without sounding pushy.", "Tone matches the brand voice.",
                     "Good structure, only changed one word.", "Specs came through accurately.",
                     "Saved a lot of editing time.", "Features are clear and easy to scan.",
                     "Nice variety in the sentences.", "Title has the key attributes up front.",
                     "Ready for the catalog.", "Minor tweak to the intro, otherwise fine.", "Reads naturally.",
                     "Exactly the length we wanted.", "Good use of the raw specs.",
                     "Accepted by the channel on first submit.", "Better than our old template copy."]
MIXED_COMMENTS = ["Fine, but the intro is a bit long.", "Usable after light edits.",
                  "Okay copy, features could be tighter.", "Decent, had to fix the color name.",
                  "Good facts, slightly flat tone."]
NEGATIVE_GENERIC = ["Too generic, could be any product.", "Tone doesn't match the brand.",
                    "Description repeats itself.", "Missed the main selling point from the input.",
                    "Feature list is vague.", "Wrong emphasis for this category.", "Had to rewrite most of it.",
                    "Sounds robotic.", "Ignored the material from the input.", "Intro is too long."]
DEFECT_COMMENTS = {
    "title_short": ["Title too short, missing key attributes.", "Title is just the brand and product type."],
    "title_long": ["Title too long, got truncated in search.", "Title is stuffed with keywords."],
    "few_features": ["Only one or two features, need at least three.", "Feature list is too thin."],
    "many_features": ["Way too many bullet points.", "Feature list is bloated, trim to the key points."],
    "long_feature": ["One bullet is a full paragraph.", "Feature lines too long for the template."],
    "thin_description": ["Description is way too short.", "Needs a real description, this is two sentences."],
    "promo": ["Description reads like an ad.", "Remove the 'best seller' hype."],
    "price": ["Prices must not appear in the copy.", "Mentions a price, rejected by the channel."],
    "shipping": ["Shipping claims are not allowed in listings.", "Remove the stock and shipping lines."],
    "contact": ["Contains a URL or contact details.", "Phone number in the description, rejected."],
    "retailer": ["Mentions a retailer name, not allowed.", "Competitor marketplace named in the copy."],
    "claims": ["Unverifiable claims, legal flagged it.", "Can't say 'FDA approved' or 'eco-friendly' without proof."],
    "caps_title": ["Title in all caps, looks like spam.", "Shouting title, fix the casing."],
    "special_chars": ["Special characters in the title got rejected.", "Remove the symbols and emoji from the title."],
    "repeat_title": ["Title repeats the same word over and over.", "Keyword stuffing in the title."],
    "unsafe_html": ["Description contains a script tag.", "Links and images are not allowed in the description."],
    "placeholder_feature": ["A feature says N/A.", "Placeholder text left in the features."],
    "testimonial": ["Customer quotes are not allowed.", "Remove the review snippets."],
}

# Feedback timeline: (model, [(first_day, last_day, version, success_rate, events)])
FEEDBACK_PLAN = [
    ("tierforge-basic", [(1, 15, "1.0.0", 0.80, 58), (16, 31, "1.1.0", 0.82, 58)]),
    ("tierforge-advanced", [(1, 13, "1.1.0", 0.87, 50), (14, 18, "1.2.0", 0.45, 22), (19, 31, "1.2.1", 0.86, 52)]),
    ("tierforge-expert", [(1, 21, "1.0.0", 0.89, 72), (22, 31, "1.0.1", 0.90, 48)]),
]

# ---------------------------------------------------------------------------
# Rubric checker (a strict mirror of the scorer's rules; good samples must pass it)
# ---------------------------------------------------------------------------

TAG_RE = re.compile(r"<\s*(/?)\s*([A-Za-z][A-Za-z0-9]*)([^>]*)>")
ANY_TAG_RE = re.compile(r"<[^>]*>")
ENTITY_RE = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);")
ALLOWED_TAGS = {"p", "ul", "li", "br", "b", "strong", "em", "i"}

PROMO_TERMS = ["best", "top rated", "top-rated", "top quality", "premium", "high quality", "high-quality",
               "hot sale", "clearance", "sale", "deal", "savings", "low price", "lowest", "amazing",
               "incredible", "unbeatable", "perfect", "must-have", "must have", "exclusive", "#1",
               "number one", "ultimate", "world-class", "bargain", "cheap", "special offer"]
PRICE_RE = re.compile(r"[$\u20ac\u00a3\u00a5]|\b\d+(?:\.\d{2})?\s*(?:dollars?|usd|bucks|cents|eur)\b|"
                      r"\bpric(?:e|es|ed|ing)\b|\bmsrp\b", re.I)
SHIPPING_TERMS = ["limited time", "discount", "% off", "while supplies last", "shipping", "shipped", "ships ", "ship ", "delivery", "deliver", "in stock", "out of stock",
                  "stock", "availab", "order now", "order today", "buy now", "pre-order", "preorder",
                  "purchase", "checkout", "next-day", "same-day"]
SHIPPING_RE = re.compile(r"\border\b|\bbuy\b|\bfree\b", re.I)
URL_RE = re.compile(r"https?://|www\.|\b[a-z0-9-]+\.(?:com|net|org|io|co|shop|store|us)\b", re.I)
EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+\.[a-z]{2,}\b", re.I)
PHONE_RE = re.compile(r"(?:\+?1[\s.-]?)?\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b|\b\d{10,}\b")
ADDRESS_RE = re.compile(r"\b\d{1,5}\s+(?:[A-Za-z]+\s+){1,3}(?:street|st|avenue|ave|road|rd|boulevard|blvd|"
                        r"lane|ln|drive|dr|way|court|ct|suite)\b", re.I)
RETAILER_RE = re.compile(r"\b(?:walmart|amazon|ebay|target|best buy|etsy|costco|home depot|aliexpress|"
                         r"shopify|kroger|wayfair|sam's club|newegg)\b", re.I)
CLAIM_TERMS = ["guarantee", "warrant", "refund", "money back", "money-back", "authentic", "genuine", "original",
               "fda", "disease", "covid", "virus", "pesticide", "antibacterial", "anti-bacterial",
               "antimicrobial", "anti-microbial", "eco-friendly", "eco friendly", "organic", "toxic", "bpa",
               "hypoallergenic", "made in usa", "made in the usa", "certified", "certification", "clinically",
               "proven", "medical", "therapeutic", "orthopedic", "100%", "secur"]
CLAIM_RE = re.compile(r"\bcur(?:e|es|ed)\b|\bgerms?\b|\bheal(?:s|ing)?\b", re.I)
RAVE_RE = re.compile(r"\brav(?:e|es|ed|ing)\b", re.I)
TESTIMONIAL_TERMS = ["customers say", "customers love", "reviewers say", "highly recommend", "customer", "reviewer", "review", "testimonial", "stars", "5 star",
                     "five star", "rated", "loved by", "would buy again", "out of 5", "buyers",
                     "shoppers"]
FIRST_PERSON_RE = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|me|my|mine|myself|we|we're|we've|we'll|us|our|ours|"
                             r"ourselves)\b", re.I)
CAPS_WORD_RE = re.compile(r"\b[A-Z]{6,}\b")
YEAR_RE = re.compile(r"\b(?:19|20)\d{2}\b")
DATE_RE = re.compile(r"\b\d{1,2}[/-]\d{1,2}(?:[/-]\d{2,4})?\b|\b(?:january|february|march|april|may|june|july|"
                     r"august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|"
                     r"dec)\.?\s+\d{1,2}\b", re.I)
# Words a scorer might read as promotional or as stock talk; good copy simply avoids them.
STRICT_RE = re.compile(r"\b(?:top|ideal|ideally|quality|available|offer|offers|luxury|ultimate|finest|"
                       r"superior|revolutionary|unmatched|greatest|leading|wholesale|stockpot)\b", re.I)
TITLE_BAD_CHARS = set("~!*$?_{}^\u00ac\u00a6\u2122\u00ae\u00a9#%@<>|\\`")
TITLE_STOPWORDS = {"and", "with", "for", "the", "of", "in", "a", "an", "to", "x", "by", "on", "or"}

# The app's compliance score: points per rule group (a group costs its points once), and
# promotional or contact text caps the score at 59, like the scorer's hard fails.
RULE_GROUPS = [
    (10, {"title_length"}), (6, {"title_brand", "title_noun", "title_attr"}), (4, {"title_caps"}),
    (5, {"title_repeat"}), (5, {"title_chars"}), (8, {"features_count"}), (6, {"feature_length"}),
    (4, {"feature_format"}), (12, {"desc_short", "desc_long"}), (4, {"desc_html"}), (10, {"promo"}),
    (8, {"contact"}), (6, {"price", "shipping", "year_or_date"}), (4, {"retailer"}), (6, {"claims"}),
    (2, {"testimonial", "non_english", "first_person"}),
]
HARD_FAILS = {"promo", "contact"}

DEFECT_EXPECTS = {"title_short": "title_length", "title_long": "title_length", "caps_title": "title_caps",
                  "special_chars": "title_chars", "repeat_title": "title_repeat", "few_features": "features_count",
                  "many_features": "features_count", "long_feature": "feature_length",
                  "placeholder_feature": "feature_format", "thin_description": "desc_short",
                  "unsafe_html": "desc_html", "promo": "promo", "price": "price", "shipping": "shipping",
                  "contact": "contact", "retailer": "retailer", "claims": "claims", "testimonial": "testimonial"}


def desc_words(desc):
    """Words after stripping tags and entities (tokens holding a letter or digit)."""
    text = ENTITY_RE.sub(" ", ANY_TAG_RE.sub(" ", desc))
    return [w for w in text.split() if re.search(r"[A-Za-z0-9]", w)]


def desc_plain(desc):
    return re.sub(r"\s+", " ", html.unescape(ANY_TAG_RE.sub(" ", desc))).strip()


def title_caps_ratio(title):
    letters = [c for c in title if c.isalpha()]
    return sum(c.isupper() for c in letters) / max(1, len(letters))


def check_listing(title, features, desc, brand, head):
    """Return the sorted list of rubric rules the listing breaks (empty for a clean listing)."""
    v = set()
    tl = len(title)
    if tl < 50 or tl > 100:
        v.add("title_length")
    if not title.startswith(brand + " "):
        v.add("title_brand")
    if head.split()[-1].lower() not in title.lower():
        v.add("title_noun")
    if not re.search(r"\d", title) and not re.search(r"\b(?:%s)\b" % "|".join(COLOR_WORDS), title, re.I):
        v.add("title_attr")
    if title_caps_ratio(title) > 0.30 or CAPS_WORD_RE.search(title):
        v.add("title_caps")
    if any(c in TITLE_BAD_CHARS or ord(c) > 127 for c in title):
        v.add("title_chars")
    words = [w for w in re.findall(r"[a-z][a-z'-]*", title.lower()) if w not in TITLE_STOPWORDS]
    if any(words.count(w) > 2 for w in set(words)):
        v.add("title_repeat")
    if len(features) < 3 or len(features) > 10:
        v.add("features_count")
    seen = set()
    for f in features:
        if len(f) > 80:
            v.add("feature_length")
        if (not f or not f[0].isupper() or "<" in f or ">" in f or f.lower() in seen
                or re.search(r"\b(?:n/a|tbd|tba|lorem|placeholder|xxx)\b", f, re.I)):
            v.add("feature_format")
        seen.add(f.lower())
    if len(desc_words(desc)) < 150:
        v.add("desc_short")
    if len(desc) > 4000:
        v.add("desc_long")
    for m in TAG_RE.finditer(desc):
        attrs = m.group(3).strip().rstrip("/").strip()
        if m.group(2).lower() not in ALLOWED_TAGS or attrs:
            v.add("desc_html")
    if re.search(r"<\s*(?:script|a|img|iframe|style)\b", desc, re.I):
        v.add("desc_html")
    plain = desc_plain(desc)
    everything = " \n ".join([title] + list(features) + [plain])
    if RETAILER_RE.search(everything):
        v.add("retailer")
    everything = re.sub(r"(?i)\bbest buy\b", "Retailer", everything)  # a name, not "best" or "buy"
    low = everything.lower()
    if any(t in low for t in PROMO_TERMS):
        v.add("promo")
    if PRICE_RE.search(everything):
        v.add("price")
    if any(t in low for t in SHIPPING_TERMS) or SHIPPING_RE.search(everything):
        v.add("shipping")
    if (URL_RE.search(everything) or EMAIL_RE.search(everything) or PHONE_RE.search(everything)
            or ADDRESS_RE.search(everything)):
        v.add("contact")
    if any(t in low for t in CLAIM_TERMS) or CLAIM_RE.search(everything):
        v.add("claims")
    if any(t in low for t in TESTIMONIAL_TERMS) or RAVE_RE.search(everything) or '"' in plain or any('"' in f for f in features):
        v.add("testimonial")
    if FIRST_PERSON_RE.search(everything):
        v.add("first_person")
    if "!" in everything:
        v.add("exclamation")
    if CAPS_WORD_RE.search(" ".join(list(features) + [plain])):
        v.add("caps_word")
    if YEAR_RE.search(everything) or DATE_RE.search(everything):
        v.add("year_or_date")
    if any(ord(c) > 127 for c in " ".join(list(features) + [plain])):
        v.add("non_english")
    if STRICT_RE.search(everything):
        v.add("strict")
    return sorted(v)


def explain(title, features, desc):
    """Which terms of the text rules matched (for error messages)."""
    everything = " \n ".join([title] + list(features) + [desc_plain(desc)])
    low = everything.lower()
    hits = [t for t in PROMO_TERMS + SHIPPING_TERMS + CLAIM_TERMS + TESTIMONIAL_TERMS if t in low]
    for rx in (PRICE_RE, SHIPPING_RE, URL_RE, EMAIL_RE, PHONE_RE, ADDRESS_RE, RETAILER_RE, CLAIM_RE,
               FIRST_PERSON_RE, CAPS_WORD_RE, YEAR_RE, DATE_RE, STRICT_RE):
        hits += [m.group(0) for m in rx.finditer(everything)]
    if '"' in desc_plain(desc) or any('"' in f for f in features):
        hits.append('"')
    return hits + [f for f in features if len(f) > 80 or not f[:1].isupper()]


def compute_metrics(title, features, desc, brand, head, violations):
    """The app's metadata and quality metrics, computed from the listing itself."""
    words = len(desc_words(desc))
    plain = desc_plain(desc)
    tl = len(title)
    seo = 40
    seo += 20 if 60 <= tl <= 90 else 14 if 50 <= tl <= 100 else 4
    seo += 10 if head.split()[-1].lower() in title.lower() else 0
    seo += 10 if head.split()[-1].lower() in plain[:400].lower() else 4
    seo += 10 if 4 <= len(features) <= 7 else 5 if 3 <= len(features) <= 10 else 0
    seo += 10 if 170 <= words <= 300 else 7 if 150 <= words <= 320 else 3 if words >= 100 else 0
    seo -= 10 * len({"title_caps", "title_chars", "title_repeat"} & set(violations))
    seo = max(0, min(100, seo))
    compliance = 100 - sum(points for points, group in RULE_GROUPS if group & set(violations))
    if HARD_FAILS & set(violations) or words < 50 or tl > 150:
        compliance = min(compliance, 59)
    content = 100 if 170 <= words <= 300 else 94 if 150 <= words <= 320 else max(10, round(words / 1.6))
    overall = round(0.5 * compliance + 0.25 * seo + 0.25 * content)
    meta = {"word_count": words, "character_count": len(plain), "seo_score": seo,
            "walmart_compliance": compliance}
    qm = {"title_length": tl, "features_count": len(features), "description_words": words,
          "overall_score": overall}
    return meta, qm


def shingles(desc, k=5):
    toks = re.findall(r"[a-z0-9]+", desc_plain(desc).lower())
    return {tuple(toks[i:i + k]) for i in range(max(1, len(toks) - k + 1))}


# ---------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------

PROPER_WORDS = {"Bluetooth", "Dutch", "French", "Mac", "Windows", "Achilles"}


def lower_phrase(s):
    """Lowercase a Title Case phrase, keeping acronyms, numbers and proper nouns."""
    out = []
    for w in str(s).split(" "):
        if w in PROPER_WORDS or any(c.isdigit() for c in w):
            out.append(w)
            continue
        out.append("-".join(p if (p.isupper() and p.isalpha()) else p.lower() for p in w.split("-")))
    return " ".join(out)


def grammar(plural):
    if plural:
        return {"It": "They", "it": "they", "obj": "them", "its": "their", "s": "", "es": "", "is": "are",
                "has": "have", "this": "these", "This": "These"}
    return {"It": "It", "it": "it", "obj": "it", "its": "its", "s": "s", "es": "es", "is": "is", "has": "has",
            "this": "this", "This": "This"}


def cap_first(s):
    return s[0].upper() + s[1:] if s and s[0].islower() else s


REF_RE = re.compile(r"\{(Ref|ref)\}")
AN_RE = re.compile(r"\b([Aa]) (?=8|11(?![\d.])|18(?![\d.]))")  # "a 8-inch" -> "an 8-inch"


def render(tpl, p, rng, cap=True, **over):
    """Fill a template from a product's context; {ref} picks a fresh way to name the product.
    Keyword overrides replace context values (used to rotate use cases between sections)."""
    ctx = dict(p["ctx"], **over) if over else p["ctx"]

    def ref(m):
        opts = ["the %s %s" % (p["model"], ctx["head_l"]), "%s %s" % (ctx["this"], ctx["head_l"])]
        if not p["plural"]:
            opts.append("the %s %s" % (p["brand"], p["model"]))
        r = rng.choice(opts)
        return cap_first(r) if m.group(1) == "Ref" else r

    out = AN_RE.sub(lambda m: m.group(1) + "n ", REF_RE.sub(ref, tpl).format_map(ctx))
    return cap_first(out) if cap else out


# Sentences that may take a leading connector ("Plus, the ...") start with one of these words.
CONNECTABLE = {"The", "A", "An", "Each", "Every", "Its", "Their", "It", "They", "This", "These", "Two",
               "Three", "Four", "Both"}


def connect(conn, s, p):
    first = s.split(" ", 1)[0]
    if first not in CONNECTABLE:
        return s
    return conn + s[0].lower() + s[1:]


def applies(only, ti):
    return only is None or ti in only


def for_type(items, ti):
    """Phrase pools hold plain strings or (text, type indices) pairs."""
    return [x if isinstance(x, str) else x[0] for x in items if isinstance(x, str) or applies(x[1], ti)]


def pick_model(rng, words, taken_names, brand, typename):
    for _ in range(200):
        suffix = rng.choice(MODEL_SUFFIXES)
        model = rng.choice(words) + (" " + suffix if suffix else "")
        name = "%s %s %s" % (brand, model, typename)
        if name not in taken_names:
            taken_names.add(name)
            return model, name
    raise SystemExit("could not find a unique product name")


def make_product(cat, rng, brands, model_words, taken_names):
    spec = SUBCATS[cat]
    ti = rng.randrange(len(spec["types"]))
    t = spec["types"][ti]
    merged = dict(spec["vals"])
    merged.update(t["vals"])
    vals = {k: rng.choice(opts) for k, opts in merged.items()}
    if spec.get("derive"):
        spec["derive"](vals)
    for k in list(vals):
        if isinstance(vals[k], str):
            vals[k + "_l"] = lower_phrase(vals[k])
    typename = t["name"].format(**vals)
    brand = rng.choice(brands)
    model, name = pick_model(rng, model_words, taken_names, brand, typename)
    avail = [f for f in spec["feats"] if applies(f["only"], ti)]
    k = min(len(avail), rng.choice([4, 5, 5, 6, 6, 7]))
    feats = rng.sample(avail, k)
    if not any(f["bit"] for f in feats):
        with_bit = [f for f in avail if f["bit"]]
        if with_bit:
            feats[-1] = rng.choice(with_bit)
    plural = t["plural"]
    tone = rng.choice(TONES)
    uses = rng.sample(for_type(spec["uses"], ti), 4)
    aud, aud2 = rng.sample(for_type(spec["aud"], ti), 2)
    ctx = dict(vals)
    ctx.update(grammar(plural))
    ctx.update({"brand": brand, "model": model, "type": typename, "type_l": lower_phrase(typename),
                "head": t["head"], "head_l": lower_phrase(t["head"]), "color": vals["color"],
                "color_l": vals["color_l"], "use1": uses[0], "use2": uses[1], "use3": uses[2],
                "use4": uses[3], "aud": aud, "Aud": cap_first(aud), "aud2": aud2})
    p = {"cat": cat, "spec": spec, "ti": ti, "brand": brand, "model": model, "type": typename,
         "head": t["head"], "plural": plural, "name": name, "vals": vals, "feats": feats, "tone": tone,
         "ctx": ctx, "model_used": rng.choice(MODELS_USED),
         "proper": PROPER_WORDS | {brand, model.split()[0]}}
    ns = [render(f["n"], p, rng, cap=False) for f in feats]
    ctx.update({"f1_n": ns[0], "f2_n": ns[1], "f3_n": ns[2]})
    p["ns"] = ns
    p["fmt"] = [render(rng.choice(f["fmt"]), p, rng) for f in feats]
    p["raw"] = [rng.choice(f["raw"]).format_map(ctx) for f in feats]
    return p


def build_input(p, rng):
    raw = list(p["raw"])
    raw += [x.format_map(p["ctx"]) for x in p["spec"].get("raw_extra", [])]
    raw.append(rng.choice(["{color_l}", "color: {color_l}", "colour {color_l}", "{color_l} finish",
                           "clr {color_l}"]).format_map(p["ctx"]))
    if rng.random() < 0.5:
        rng.shuffle(raw)
    if rng.random() < 0.85:
        raw = [r.lower() for r in raw]
    return {"product_name": p["name"], "features": raw, "category": p["cat"],
            "user_context": {"model_used": p["model_used"], "language": "en", "tone": p["tone"]}}


TITLE_PATTERNS = [
    "{B} {M} {T}, {A} - {C}",
    "{B} {M} {T} with {A_and}, {C}",
    "{B} {M} {T} ({A}) - {C}",
    "{B} {T} {M} - {A}, {C}",
    "{B} {M} {T} in {C}, {A}",
    "{B} {M} {T} - {C}, {A}",
    "{B} {M} {T}, {C}, {A}",
]


SENTENCE_TITLE_PATTERNS = ["{B} {M} {T} with {A_and} in {C}", "{B} {M} {T} in {C} with {A_and}",
                           "{B} {M} {T} in {C}, {A}", "{B} {M} {T}, {A}, {C}"]
# Title attributes that read badly after "with" ("with Induction Ready", "with 10 Inch").
NOT_NOUN_LAST = {"ready", "backlit", "waterproof", "packable", "hot-swappable", "quick-dry", "rechargeable",
                 "wireless", "cancelling", "tall", "wide", "thick", "inch", "foldable", "tri-ply", "lb", "kg",
                 "gsm", "psi", "mah", "ft", "oz", "l", "k", "quart", "in"}


def noun_like(bit):
    words = bit.replace('"', " in").split()
    last = words[-1].lower()
    return (words[0] not in ("Holds", "Extends", "Size") and not re.fullmatch(r"[\d.,]+\w{0,3}", last)
            and last not in NOT_NOUN_LAST and not re.fullmatch(r"[A-Z]+\d+|\d+[A-Za-z]*", words[-1]))


def title_ok(title, p):
    return not [v for v in check_listing(title, ["Xx", "Yy", "Zz"], "w " * 160, p["brand"], p["head"])
                if v.startswith("title") or v in ("strict", "promo", "claims", "year_or_date")]


def build_title(p, rng):
    bits = []
    for f in p["feats"]:
        if f["bit"]:
            b = f["bit"].format_map(p["ctx"])
            if b not in bits and b.lower() not in p["type"].lower():
                bits.append(b)
    extras = [b.format_map(p["ctx"]) for b in p["spec"].get("bits", [])]
    soft = []
    for f, n_text in zip(p["feats"], p["ns"]):
        words = re.sub(r"^(?:a|an|the)\s+", "", n_text).split()
        if not f["bit"] and len(words) <= 4 and words[0] not in ("up", "three", "two", "four"):
            soft.append(" ".join(w if (w in TITLE_STOPWORDS or w[0].isupper() or w[0].isdigit())
                                 else "-".join(x[:1].upper() + x[1:] for x in w.split("-")) for w in words))
    sentence_style = rng.random() < 0.15
    color = lower_phrase(p["vals"]["color"]) if sentence_style else p["vals"]["color"]

    def make(pat, attrs, extra_sep):
        if sentence_style:
            attrs = [lower_phrase(a) for a in attrs]
        if not attrs:
            attrs = extras[:1] or [color]
        a_and = " and ".join(attrs) if len(attrs) < 3 else ", ".join(attrs[:-1]) + " and " + attrs[-1]
        title = pat.format(B=p["brand"], M=p["model"], T=p["type"], A=", ".join(attrs), A_and=a_and, C=color)
        for x, sep in zip(extras, extra_sep):
            if x not in title and (sep or len(title) < 62):
                title += (", " if " - " in title else rng.choice([", ", " - "])) + x
        return title

    for attempt in range(80):
        pat = rng.choice(SENTENCE_TITLE_PATTERNS if sentence_style else TITLE_PATTERNS)
        attrs = rng.sample(bits, min(rng.choice([1, 2, 2, 3]), len(bits)))
        spare = rng.sample(soft, len(soft))
        if spare and rng.random() < 0.15:
            attrs.append(spare.pop())
        if "with" in pat and not all(noun_like(a) for a in attrs + spare[-1:]):
            continue
        extra_sep = [rng.random() < 0.5 for _ in extras]
        title = make(pat, attrs, extra_sep)
        while len(title) < 52 and spare:
            attrs.append(spare.pop())
            title = make(pat, attrs, extra_sep)
        if 52 <= len(title) <= 98 and title_ok(title, p):
            return title
    raise SystemExit("no valid title for %s (bits %r)" % (p["name"], bits))


def assemble(pars, items, header, mode, rng, p):
    """Render paragraphs (lists of sentences) and an optional bullet list in one of three styles."""
    esc = lambda s: html.escape(s, quote=False)
    texts = [" ".join(par) for par in pars if par]
    if mode == "plain":
        out = list(texts)
        if items:
            block = header + ":\n" + "\n".join("- " + i for i in items)
            out.insert(rng.choice([len(out) - 1, len(out)]), block)
        return "\n\n".join(out)
    first = esc(texts[0])
    if rng.random() < 0.4:
        key = "%s %s" % (p["brand"], p["model"])
        if key in first:
            first = first.replace(key, "<b>%s</b>" % key, 1)
    body = [first] + [esc(t) for t in texts[1:]]
    if mode == "html_br":
        out = "<p>" + "<br><br>".join(body) + "</p>"
        if items:
            out += "<p><b>%s</b><br>%s</p>" % (esc(header), "<br>".join("- " + esc(i) for i in items))
        return out
    parts = ["<p>%s</p>" % b for b in body]
    if items:
        hdr = rng.choice(["<p><b>%s</b></p>", "<p><strong>%s:</strong></p>", "<p><em>%s</em></p>"]) % esc(header)
        block = hdr + "<ul>" + "".join("<li>%s</li>" % esc(i) for i in items) + "</ul>"
        parts.insert(rng.choice([len(parts) - 1, len(parts)]), block)
    return ("\n" if rng.random() < 0.3 else "").join(parts)


def build_description(p, rng, features_formatted, mode, lo=170, hi=300):
    lo = rng.choice([lo - 5, lo, lo, lo + 5, lo + 15, lo + 30])
    if len(p["feats"]) <= 4:
        lo = min(lo, 175)
    spec, tone = p["spec"], p["tone"]
    R = lambda t: render(t, p, rng)
    intro = R(rng.choice(INTROS[tone]))
    hook = R(rng.choice(spec["hooks"]))
    feat_sents = []
    for i, f in enumerate(p["feats"]):
        s = R(rng.choice(f["say"]))
        if i > 0 and rng.random() < 0.3:
            s = connect(rng.choice(CONNECTORS[tone]), s, p)
        feat_sents.append(s)
    c = p["ctx"]
    rot = [dict(use1=c["use3"], use2=c["use4"], use3=c["use2"], aud=c["aud2"], Aud=cap_first(c["aud2"])),
           dict(use1=c["use4"], use2=c["use1"], use3=c["use3"]),
           dict(use1=c["use2"], use2=c["use3"], use3=c["use4"], aud=c["aud2"], Aud=cap_first(c["aud2"]))]
    uses = [render(u, p, rng, **rot[k]) for k, u in enumerate(rng.sample(USE_SENTENCES, 3))]
    cares = for_type(spec["care"], p["ti"])
    cares = [R(c) for c in rng.sample(cares, min(2, len(cares)))]
    closings = [render(t, p, rng, **rot[2]) for t in rng.sample(CLOSINGS[tone], 2)]
    extras = [render(t, p, rng, **rot[k]) for k, t in enumerate(rng.sample(EXTRA_SENTENCES, 3))]

    p1 = [intro]
    if rng.random() < 0.6:
        (p1.insert(0, hook) if rng.random() < 0.5 else p1.append(hook))
    cut = rng.randint(2, len(feat_sents) - 2) if len(feat_sents) >= 5 and rng.random() < 0.6 else len(feat_sents)
    fp = [feat_sents[:cut], feat_sents[cut:]]
    puse = [uses[0]] + ([cares[0]] if cares and rng.random() < 0.7 else [])
    pclose = [closings[0]]
    use_list = rng.random() < (0.45 if mode != "plain" else 0.3)
    header = rng.choice(LIST_HEADERS)

    def count():
        sents = p1 + fp[0] + fp[1] + puse + pclose
        n = sum(len(s.split()) for s in sents)
        if use_list:
            n += sum(len(i.split()) for i in features_formatted) + len(header.split())
        return n

    queue = [(puse, c) for c in cares if c not in puse]
    queue += [(puse, uses[1]), ("list", None), (puse, extras[0]), ("end", closings[1]), (puse, extras[1]),
              (puse, uses[2]), (puse, extras[2])]
    while count() < lo and queue:
        target, sent = queue.pop(0)
        if target == "list":
            use_list = True
        elif target == "end":
            pclose.append(sent)
        else:
            target.append(sent)
    if count() < lo:
        use_list = True
    while count() > hi:
        if use_list:
            use_list = False
        elif len(puse) > 1:
            puse.pop()
        elif len(p1) > 1:
            p1.pop(0)
        else:
            break
    pars = [p1, fp[0], fp[1], puse, pclose]
    return assemble(pars, features_formatted if use_list else None, header, mode, rng, p)


def build_listing(p, rng):
    mode = rng.choices(["html", "plain", "html_br"], weights=[6, 3, 1])[0]
    features = list(p["fmt"])
    title = build_title(p, rng)
    desc = build_description(p, rng, features, mode)
    return {"title": title, "features": features, "description": desc, "mode": mode}


# ---- defects --------------------------------------------------------------

def defect_ctx(p, rng):
    return {"domain": p["brand"].lower() + rng.choice(["-store", "shop", "-official", "direct"]),
            "nn": "%02d" % rng.randint(10, 99), "sku": "%s-%d" % (p["brand"][:3].upper(), rng.randint(100, 999)),
            "name": p["name"], "aud": p["ctx"]["aud"], "use1": p["ctx"]["use1"], "head_l": p["ctx"]["head_l"]}


def insert_sentence(desc, mode, sentence, rng):
    if mode == "plain":
        pars = desc.split("\n\n")
        i = rng.randrange(len(pars))
        pars[i] = pars[i] + " " + sentence
        return "\n\n".join(pars)
    ends = [m.start() for m in re.finditer(r"</p>", desc)]
    if not ends:
        return desc + " " + html.escape(sentence, quote=False)
    pos = rng.choice(ends)
    return desc[:pos] + " " + html.escape(sentence, quote=False) + desc[pos:]


TEXT_DEFECTS = {"promo": PROMO_PHRASES, "price": PRICE_PHRASES, "shipping": SHIPPING_PHRASES,
                "contact": CONTACT_PHRASES, "retailer": RETAILER_PHRASES, "claims": CLAIM_PHRASES,
                "testimonial": TESTIMONIAL_PHRASES}


def thin_description(p, rng, mode):
    R = lambda t: render(t, p, rng)
    sents = [R(rng.choice(INTROS[p["tone"]]))]
    if rng.random() < 0.5:
        sents.append(R(rng.choice(p["feats"][0]["say"])))
    else:
        sents += [R(rng.choice(f["say"])) for f in p["feats"][:rng.randint(2, 4)]]
        sents.append(R(rng.choice(CLOSINGS[p["tone"]])))
    while sum(len(s.split()) for s in sents) >= 125:  # room for an inserted defect sentence
        sents.pop()
    if mode == "plain":
        return " ".join(sents)
    return "<p>%s</p>" % html.escape(" ".join(sents), quote=False)


def minor_points(kinds):
    """Points the minor defects of a sample cost, each rule counted once."""
    return sum(dict(MINOR_RULES[k] for k in kinds if k in MINOR_RULES).values())


def plan_defects(rng, n_bad):
    """The defects of each BAD sample (see GATE_DEFECTS), in a shuffled order of plans.

    Gate defects are dealt from a shuffled pool, so each is used about equally often. Minor
    defects are picked by the rule they break, least used first, so no rule dominates: a sample
    with minor defects only takes the set of four to six rules (at least 21 points) whose rules
    have been used least so far."""
    gate_pool = GATE_DEFECTS * (n_bad // len(GATE_DEFECTS) + 1)
    rng.shuffle(gate_pool)
    points = dict(MINOR_RULES.values())
    rule_use = {r: 0 for r in points}
    kind_use = {k: 0 for k in MINOR_RULES}
    combos = [c for n in (4, 5, 6) for c in itertools.combinations(sorted(points), n)
              if sum(points[r] for r in c) > 100 - PASS_SCORE]

    def add_rule(kinds, rule):
        k = min((k for k in MINOR_RULES if MINOR_RULES[k][0] == rule), key=lambda k: kind_use[k])
        rule_use[rule] += 1
        kind_use[k] += 1
        kinds.append(k)

    plans = []
    for j in range(n_bad):
        if j < N_GATE_ONLY + N_GATE_PLUS:
            kinds = [gate_pool.pop()]
            if j >= N_GATE_ONLY:
                r = rng.random()
                g1 = DEFECT_GROUP.get(kinds[0])
                second = next((x for x, c in enumerate(gate_pool)
                               if c not in kinds and (g1 is None or DEFECT_GROUP.get(c) != g1)), None)
                if r < 0.15 and second is not None:
                    kinds.append(gate_pool.pop(second))
                else:
                    for _ in range(1 if r < 0.75 else 2):
                        groups = {DEFECT_GROUP.get(k) for k in kinds} - {None}
                        taken = {MINOR_RULES[k][0] for k in kinds if k in MINOR_RULES}
                        cands = sorted({MINOR_RULES[k][0] for k in MINOR_RULES
                                        if DEFECT_GROUP.get(k) not in groups} - taken)
                        add_rule(kinds, min(cands, key=lambda r: (rule_use[r], rng.random())))
        else:
            # minor defects only: at least 21 points, so the score stays under the pass score
            size = rng.choice([4, 5, 5, 6])
            fits = [c for c in combos if len(c) == size]
            best = min(fits, key=lambda c: (sum(rule_use[r] for r in c), rng.random()))
            kinds = []
            for rule in best:
                add_rule(kinds, rule)
        plans.append(kinds)
    rng.shuffle(plans)
    return plans


DEFECT_ORDER = ["thin_description", "title_short", "title_long", "repeat_title", "few_features", "many_features",
                "long_feature", "placeholder_feature", "promo", "price", "shipping", "contact", "retailer",
                "claims", "testimonial", "caps_title", "special_chars", "unsafe_html"]


def apply_defect(kind, out, p, rng, others=(), owned=None):
    """Break one rule. Text defects avoid the title or features when another defect owns them.

    `owned` collects the fields that earlier text defects of the same sample went into, so that
    at most one text defect lands in the title and one in the features."""
    title, feats, desc, mode = out["title"], list(out["features"]), out["description"], out["mode"]
    owned = set() if owned is None else owned
    other_groups = {DEFECT_GROUP.get(o) for o in others if o != kind} | owned
    dc = defect_ctx(p, rng)
    brand, model, head = p["brand"], p["model"], p["head"]
    if kind in TEXT_DEFECTS:
        where = rng.random()
        if where < 0.7 or (where < 0.85 and "title" in other_groups) or (where >= 0.85 and "feats" in other_groups):
            desc = insert_sentence(desc, mode, rng.choice(TEXT_DEFECTS[kind]).format_map(dc), rng)
        elif where < 0.85:
            title = title + rng.choice(TITLE_INSERTS[kind]).format_map(dc)
            owned.add("title")
        else:
            owned.add("feats")
            extra = rng.choice(FEATURE_INSERTS[kind]).format_map(dc)
            own = [i for i, f in enumerate(feats) if f in p["fmt"]]  # never overwrite another defect
            if (rng.random() < 0.5 and len(feats) < 10) or not own:
                feats.append(extra)
            else:
                feats[rng.choice(own)] = extra
    elif kind == "title_short":
        cands = [t for t in ["%s %s %s" % (brand, model, head), "%s %s" % (brand, head),
                             "%s %s %s" % (brand, head, p["vals"]["color"]), "%s %s" % (brand, p["type"])]
                 if len(t) < 50]
        title = rng.choice(cands)
    elif kind == "title_long":
        bits = [f["bit"].format_map(p["ctx"]) for f in p["spec"]["feats"]
                if f["bit"] and applies(f["only"], p["ti"])]
        rng.shuffle(bits)
        for b in bits:
            if b not in title:
                title += ", " + b
        title += " for %s, %s and %s" % (p["ctx"]["use1"], p["ctx"]["use2"], p["ctx"]["aud"])
        if len(title) <= 100:
            title += ", Gift for %s" % p["ctx"]["Aud"]
    elif kind == "caps_title":
        title = title.upper()
    elif kind == "special_chars":
        mark = rng.choice(SPECIAL_MARKS)
        if mark in ("\u2122", "\u00ae"):
            b = brand if brand in title else brand.upper()  # after caps_title
            title = title.replace(b, b + mark, 1)
        elif mark == "~":
            title = title.replace(" - ", " ~ ", 1) if " - " in title else title + " ~"
        else:
            title = rng.choice([title + " " + mark, mark + " " + title])
    elif kind == "repeat_title":
        words = [w for w in p["type"].split() if w not in head.split()]
        bit = next((f["bit"].format_map(p["ctx"]) for f in p["feats"] if f["bit"]), p["vals"]["color"])
        title = "%s %s %s %s %s %s %s" % (brand, head, " ".join(words[:2]), head, bit, head, p["vals"]["color"])
    elif kind == "few_features":
        feats = feats[:rng.choice([1, 2])]
    elif kind == "many_features":
        pool = [render(rng.choice(f["fmt"]), p, rng) for f in p["spec"]["feats"] if applies(f["only"], p["ti"])]
        pool += rng.sample(FILLER_FEATURES, len(FILLER_FEATURES))
        for f in pool:
            if f not in feats:
                feats.append(f)
            if len(feats) >= rng.randint(11, 13):
                break
    elif kind == "long_feature":
        i = rng.randrange(len(feats))
        f = p["feats"][i] if i < len(p["feats"]) else p["feats"][0]
        long = feats[i] + " - " + render(rng.choice(f["say"]), p, rng)
        if len(long) <= 80:
            long = long.rstrip(".") + ", which makes it a sensible pick for %s and %s" % (
                p["ctx"]["use1"], p["ctx"]["use2"])
        feats[i] = long
    elif kind == "placeholder_feature":
        i = rng.randrange(len(feats))
        r = rng.random()
        if r < 0.45:
            feats[i] = rng.choice(PLACEHOLDERS)
        elif r < 0.7:
            feats.append(rng.choice(PLACEHOLDERS))
        else:
            feats[i] = feats[i][0].lower() + feats[i][1:]
            if not feats[i][0].islower():
                feats[i] = "tbd: " + feats[i]
    elif kind == "thin_description":
        desc = thin_description(p, rng, mode)
    elif kind == "unsafe_html":
        snippet = rng.choice(UNSAFE_HTML).format_map(dc)
        if snippet.startswith("<p>") or rng.random() < 0.5:
            desc = desc + snippet
        else:
            desc = snippet + desc
    else:
        raise ValueError(kind)
    return {"title": title, "features": feats, "description": desc, "mode": mode}


def near_duplicate(desc, rng):
    swaps = [("keeps", "holds"), ("simple", "easy"), ("quickly", "fast"), ("design", "build"),
             ("small", "compact"), ("steady", "stable"), ("soft", "gentle"), ("comfortable", "cozy"),
             ("clean", "neat"), ("easy", "simple"), ("full", "whole"), ("room", "space"), ("enough", "plenty"),
             ("makes", "turns"), ("gives", "provides"), ("light", "bright"), ("fabric", "material"),
             ("holds", "keeps"), ("sits", "rests"), ("helps", "aids"), ("stays", "remains")]
    rng.shuffle(swaps)
    swaps += [("the", "this"), ("and", "plus")]
    original, changed, introduced = desc, 0, set()
    want = rng.choice([1, 2])
    for a, b in swaps:
        if a in introduced:  # never undo an earlier swap
            continue
        new = re.sub(r"\b%s\b" % a, b, desc, count=1)
        if new != desc:
            desc = new
            introduced.add(b)
            changed += 1
            if changed >= want:
                break
    return desc, int(desc != original)


# ---- feedback -------------------------------------------------------------

def sample_feedback(rng, good, defects):
    if good:
        rating = rng.choices([5, 4, 3], weights=[55, 35, 10])[0]
        comment = rng.choice(POSITIVE_COMMENTS if rating >= 4 else MIXED_COMMENTS)
    else:
        rating = rng.choices([1, 2, 3, 4], weights=[25, 40, 25, 10])[0]
        comment = rng.choice(DEFECT_COMMENTS[rng.choice(defects)]) if rating <= 3 else rng.choice(MIXED_COMMENTS)
    return {"rating": rating, "comment": comment}


def build_feedback(rng, good_ids, bad_info, clean_outputs):
    """Feedback events for October 2026, with a planted dip for tierforge-advanced 1.2.0."""
    events = []
    for model, segments in FEEDBACK_PLAN:
        for first, last, version, rate, n in segments:
            days = sorted(rng.randint(first, last) for _ in range(n))
            # make sure every day of the segment has at least one event
            for i, d in enumerate(range(first, last + 1)):
                if i < n and d not in days:
                    days[rng.randrange(n)] = d
            k = round(rate * n)
            success = [True] * k + [False] * (n - k)
            rng.shuffle(success)
            for day, ok in zip(days, success):
                events.append({"model": model, "version": version, "day": day, "ok": ok,
                               "minute": rng.randint(8 * 60, 20 * 60 - 1)})
    events.sort(key=lambda e: (e["day"], e["minute"], e["model"]))
    bad_ids = sorted(bad_info)
    negatives = [e for e in events if not e["ok"]]
    n_corr = round(0.10 * len(negatives))
    corr_idx = set(rng.sample(range(len(negatives)), n_corr))
    out = []
    neg_i = 0
    for i, e in enumerate(events, 1):
        ts = datetime(2026, 10, e["day"]) + timedelta(minutes=e["minute"])
        corrected = None
        if e["ok"]:
            cid = rng.choice(good_ids)
            rating = rng.choices([5, 4], weights=[60, 40])[0]
            comment = rng.choice(POSITIVE_COMMENTS)
        else:
            rating = rng.choices([3, 2, 1], weights=[45, 35, 20])[0]
            wants_corr = neg_i in corr_idx
            neg_i += 1
            if wants_corr or rng.random() < 0.7:
                cid = rng.choice(bad_ids)
                comment = rng.choice(DEFECT_COMMENTS[rng.choice(bad_info[cid])])
                if wants_corr:
                    c = clean_outputs[cid]
                    corrected = {"title": c["title"], "features": c["features"], "description": c["description"]}
            else:
                cid = rng.choice(good_ids)
                comment = rng.choice(NEGATIVE_GENERIC)
        ev = {"id": "fb-%05d" % i, "content_id": cid, "model": e["model"], "version": e["version"],
              "rating": rating, "comment": comment, "timestamp": ts.strftime("%Y-%m-%dT%H:%M:00Z")}
        if corrected:
            ev["corrected_output"] = corrected
        out.append(ev)
    return out


# ---- main -----------------------------------------------------------------

def main():
    rng = random.Random(SEED)
    cats = list(SUBCATS)
    n_base = N_SAMPLES - N_EXACT_DUPS - N_NEAR_DUPS
    assign = [cats[i % len(cats)] for i in range(n_base)]
    rng.shuffle(assign)
    taken = set()
    products = [make_product(c, rng, BRANDS[c.split(" > ")[0]], MODEL_WORDS, taken) for c in assign]

    # -- choose defective samples and their defects
    n_bad = round(N_SAMPLES * BAD_SHARE)
    bad_idx = sorted(rng.sample(range(n_base), n_bad))
    plans = plan_defects(rng, n_bad)
    defects_of = dict(zip(bad_idx, plans))

    # -- build listings
    listings, clean = [], []
    for i, p in enumerate(products):
        out = build_listing(p, rng)
        clean.append(out)
        kinds = sorted(defects_of.get(i, []), key=DEFECT_ORDER.index)
        owned = set()
        for kind in kinds:
            out = apply_defect(kind, out, p, rng, kinds, owned)
        listings.append(out)

    # -- planted duplicates (copies of good samples, inserted later in the stream)
    good_base = [i for i in range(n_base) if i not in defects_of]
    dup_src = rng.sample(good_base, N_EXACT_DUPS + N_NEAR_DUPS)
    order = [("base", i) for i in range(n_base)]
    dup_entries = []
    for j, src in enumerate(dup_src):
        kind = "exact" if j < N_EXACT_DUPS else "near"
        if kind == "exact":
            out = dict(listings[src])
        else:
            desc, changed = near_duplicate(listings[src]["description"], rng)
            if not changed:
                raise SystemExit("near duplicate of %d could not be varied: %r" % (src, listings[src]["description"]))
            out = dict(listings[src], description=desc)
        dup_entries.append((kind, src, out))
        pos = order.index(("base", src))
        order.insert(rng.randint(pos + 1, len(order)), ("dup", j))

    # -- emit samples
    samples, meta_rows = [], []
    ts = datetime(2026, 9, 1, 8, 0)
    id_of_base = {}
    planted_pairs = []
    for n, (kind, ref) in enumerate(order, 1):
        sid = "s-%06d" % n
        ts += timedelta(minutes=rng.randint(15, 50))
        if kind == "base":
            p, out, defects = products[ref], listings[ref], defects_of.get(ref, [])
            id_of_base[ref] = sid
            dup_kind = None
        else:
            dup_kind, src, out = dup_entries[ref]
            p, defects = products[src], []
            planted_pairs.append((id_of_base[src], sid, dup_kind))
        viol = check_listing(out["title"], out["features"], out["description"], p["brand"], p["head"])
        meta, qm = compute_metrics(out["title"], out["features"], out["description"], p["brand"], p["head"], viol)
        samples.append({"id": sid, "timestamp": ts.strftime("%Y-%m-%dT%H:%M:00Z"), "input": build_input(p, rng),
                        "output": {"title": out["title"], "features_formatted": out["features"],
                                   "description": out["description"], "metadata": meta},
                        "quality_metrics": qm})
        meta_rows.append({"id": sid, "p": p, "defects": defects, "viol": viol, "dup": dup_kind,
                          "base": ref if kind == "base" else None, "mode": out["mode"]})
    # exact copies carry the same input as their source
    by_id = {s["id"]: s for s in samples}
    for a, b, kind in planted_pairs:
        by_id[b]["input"] = json.loads(json.dumps(by_id[a]["input"]))
        if kind == "exact":
            by_id[b]["output"] = json.loads(json.dumps(by_id[a]["output"]))
            by_id[b]["quality_metrics"] = dict(by_id[a]["quality_metrics"])

    for a, b, kind in planted_pairs:
        if (by_id[a]["output"] == by_id[b]["output"]) != (kind == "exact"):
            raise SystemExit("planted %s duplicate %s of %s is wrong" % (kind, b, a))

    # -- app scores that disagree with the rules (~5%)
    bad_rows = [r for r in meta_rows if r["defects"]]
    # only hard fails (capped at 59 by the scorer too), so that every inflated score is 33 or more
    # points above the scorer's; a sample with minor defects only scores 73-79 there
    def capped(r):
        o = by_id[r["id"]]
        return (set(r["defects"]) & HARD_FAILS or o["quality_metrics"]["description_words"] < 50
                or o["quality_metrics"]["title_length"] > 150)
    low = [r for r in bad_rows if by_id[r["id"]]["output"]["metadata"]["walmart_compliance"] <= 59 and capped(r)]
    if len(low) < N_INFLATED:
        raise SystemExit("only %d badly broken samples to inflate" % len(low))
    inflated = rng.sample(low, N_INFLATED)
    for r in inflated:
        s = by_id[r["id"]]
        s["output"]["metadata"]["walmart_compliance"] = rng.randint(92, 98)
        s["quality_metrics"]["overall_score"] = rng.randint(88, 96)
        r["inflated"] = True

    # -- inline feedback on ~40% of samples
    for r in rng.sample(meta_rows, round(FEEDBACK_SHARE * N_SAMPLES)):
        by_id[r["id"]]["feedback"] = sample_feedback(rng, not r["defects"], r["defects"])

    # -- checks -------------------------------------------------------------
    problems = []
    for r in meta_rows:
        if not r["defects"] and r["viol"]:
            o = by_id[r["id"]]["output"]
            problems.append("good %s breaks %s: %s" % (r["id"], r["viol"], explain(
                o["title"], o["features_formatted"], o["description"])))
        if r["defects"] and not (set(r["defects"]) & set(GATE_DEFECTS)
                                 or minor_points(r["defects"]) > 100 - PASS_SCORE):
            problems.append("bad %s would pass the rubric: %s" % (r["id"], r["defects"]))
        for d in r["defects"]:
            if DEFECT_EXPECTS[d] not in r["viol"]:
                o = by_id[r["id"]]["output"]
                problems.append("bad %s planted %s but checker saw %s: %r" % (
                    r["id"], d, r["viol"], [o["title"], o["features_formatted"], o["description"][-300:]]))
        if not r["defects"]:
            o = by_id[r["id"]]["output"]
            if not (4 <= len(o["features_formatted"]) <= 7 and 150 <= o["metadata"]["word_count"] <= 320):
                problems.append("good %s outside target ranges" % r["id"])
    for i, c in enumerate(clean):
        v = check_listing(c["title"], c["features"], c["description"], products[i]["brand"], products[i]["head"])
        if v:
            problems.append("clean version of base %d breaks %s" % (i, v))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit("%d rubric problems" % len(problems))

    sh = [shingles(s["output"]["description"]) for s in samples]
    planted = {(a, b) for a, b, _ in planted_pairs}
    worst, worst_pair, planted_sims = 0.0, None, {}
    for i in range(len(sh)):
        si = sh[i]
        for j in range(i + 1, len(sh)):
            inter = len(si & sh[j])
            if not inter:
                continue
            jac = inter / (len(si) + len(sh[j]) - inter)
            key = (samples[i]["id"], samples[j]["id"])
            if key in planted:
                planted_sims[key] = jac
            elif jac > worst:
                worst, worst_pair = jac, key
    if worst >= JACCARD_LIMIT:
        raise SystemExit("descriptions %s too similar: Jaccard %.3f" % (worst_pair, worst))

    # -- feedback events and eval products
    good_ids = [r["id"] for r in meta_rows if not r["defects"]]
    bad_info = {r["id"]: r["defects"] for r in meta_rows if r["defects"]}
    clean_by_id = {r["id"]: clean[r["base"]] for r in meta_rows if r["defects"]}
    feedback = build_feedback(rng, good_ids, bad_info, clean_by_id)
    for e in feedback:
        c = e.get("corrected_output")
        if c:
            p = products[next(r["base"] for r in meta_rows if r["id"] == e["content_id"])]
            if check_listing(c["title"], c["features"], c["description"], p["brand"], p["head"]):
                raise SystemExit("corrected output for %s is not clean" % e["id"])

    sample_names = {s["input"]["product_name"] for s in samples}
    sample_brands = {r["p"]["brand"] for r in meta_rows}
    eval_rows = []
    eval_cats = cats + cats[:N_EVAL - 2 * len(cats)] + cats
    eval_cats = sorted(eval_cats[:N_EVAL], key=cats.index)
    eval_taken = set()
    for k, c in enumerate(eval_cats, 1):
        p = make_product(c, rng, EVAL_BRANDS[c.split(" > ")[0]], EVAL_MODEL_WORDS, eval_taken)
        if p["name"] in sample_names or p["brand"] in sample_brands:
            raise SystemExit("eval product %s overlaps samples" % p["name"])
        eval_rows.append({"id": "eval-%03d" % k, "input": build_input(p, rng)})

    # -- write
    DATA.mkdir(exist_ok=True)

    def dump(path, rows):
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    dump(DATA / "samples.jsonl", samples)
    dump(DATA / "feedback.jsonl", feedback)
    dump(DATA / "eval-products.jsonl", eval_rows)

    # -- summary ------------------------------------------------------------
    n_good = sum(1 for r in meta_rows if not r["defects"])
    print("samples.jsonl: %d samples, %d good (%.1f%%), %d bad (%.1f%%)" % (
        len(samples), n_good, 100 * n_good / len(samples), len(samples) - n_good,
        100 * (len(samples) - n_good) / len(samples)))
    print("  per top-level category:")
    tops = {}
    for r in meta_rows:
        t = r["p"]["cat"].split(" > ")[0]
        tops.setdefault(t, [0, 0])
        tops[t][0 if not r["defects"] else 1] += 1
    for t in BRANDS:
        print("    %-18s %4d  (good %d, bad %d)" % (t, sum(tops[t]), tops[t][0], tops[t][1]))
    subs = {}
    for r in meta_rows:
        subs[r["p"]["cat"]] = subs.get(r["p"]["cat"], 0) + 1
    print("  sub-categories: %d, %d..%d samples each" % (len(subs), min(subs.values()), max(subs.values())))
    gate_only = sum(1 for r in bad_rows if len(r["defects"]) == 1)
    minor_only = [r for r in bad_rows if not set(r["defects"]) & set(GATE_DEFECTS)]
    print("  bad samples: %d gate defect alone, %d gate defect plus more, %d minor defects only "
          "(%d..%d points)" % (gate_only, len(bad_rows) - gate_only - len(minor_only), len(minor_only),
                               min(minor_points(r["defects"]) for r in minor_only),
                               max(minor_points(r["defects"]) for r in minor_only)))
    sizes = {}
    for r in bad_rows:
        sizes[len(r["defects"])] = sizes.get(len(r["defects"]), 0) + 1
    print("  defects per bad sample: " + ", ".join("%d: %d" % kv for kv in sorted(sizes.items())))
    print("  defect kinds:")
    counts = {}
    for r in bad_rows:
        for d in r["defects"]:
            counts[d] = counts.get(d, 0) + 1
    for d in DEFECT_KINDS:
        print("    %-20s %3d" % (d, counts.get(d, 0)))
    print("  app scores disagreeing with the rules (inflated): %d (%.1f%%)" % (
        len(inflated), 100 * len(inflated) / len(samples)))
    nr = [v for (a, b), v in planted_sims.items() if (a, b, "near") in set(planted_pairs)]
    print("  planted duplicates: %d exact + %d near = %d (%.1f%%); near-duplicate Jaccard %.2f..%.2f" % (
        N_EXACT_DUPS, N_NEAR_DUPS, N_EXACT_DUPS + N_NEAR_DUPS,
        100 * (N_EXACT_DUPS + N_NEAR_DUPS) / len(samples), min(nr), max(nr)))
    print("  max 5-gram Jaccard between other descriptions: %.3f (%s / %s)" % (worst, *worst_pair))
    modes = {}
    for r in meta_rows:
        modes[r["mode"]] = modes.get(r["mode"], 0) + 1
    print("  description styles: " + ", ".join("%s %d" % kv for kv in sorted(modes.items())))
    tones = {}
    for s in samples:
        tones[s["input"]["user_context"]["tone"]] = tones.get(s["input"]["user_context"]["tone"], 0) + 1
    print("  tones: " + ", ".join("%s %d" % kv for kv in sorted(tones.items())))
    gw = [s["output"]["metadata"]["word_count"] for s, r in zip(samples, meta_rows) if not r["defects"]]
    print("  good description words: %d..%d (mean %.0f)" % (min(gw), max(gw), sum(gw) / len(gw)))
    print("  inline feedback objects: %d" % sum(1 for s in samples if "feedback" in s))
    print("feedback.jsonl: %d events, %d with corrected_output" % (
        len(feedback), sum(1 for e in feedback if "corrected_output" in e)))
    for model, segments in FEEDBACK_PLAN:
        for first, last, version, _, _ in segments:
            ev = [e for e in feedback if e["model"] == model and first <= int(e["timestamp"][8:10]) <= last]
            ok = sum(1 for e in ev if e["rating"] >= 4)
            print("    %-19s %-6s Oct %2d-%2d  %3d events, success %.0f%%" % (
                model, version, first, last, len(ev), 100 * ok / len(ev)))
    print("eval-products.jsonl: %d inputs over %d sub-categories, brands held out" % (
        len(eval_rows), len(set(eval_cats))))


if __name__ == "__main__":
    main()
