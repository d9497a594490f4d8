"""Word lists of the realistic benchmark dataset, shared by its SQL fill (benchmarks/fill_real.sql,
as psql variables) and its text documents (benchmarks/realistic.py).

Large enough, and combined freely enough, that the text is varied like people's notes: a tiny
vocabulary repeated would compress far better than real records and flatter gzip.
Entries with `|` carry fields that belong together (a city with its country, dialling code and
coordinates; a make with its model and the VIN's manufacturer code).
"""

from __future__ import annotations


def _split(text: str, sep: str | None = None) -> list[str]:
    """The entries of a block of text: its words, or (with sep) the phrases between the seps,
    across its lines."""
    if sep is None:
        return text.split()
    return [p.strip() for p in " ".join(text.split()).split(sep)]

FIRST_NAMES = _split("""
Aaliyah Aaron Abdul Ada Adam Adrian Agnes Ahmed Aiko Aisha Alan Albert Alejandro Alex Alice Alina
Amara Amir Ana Anders Andrea Andrzej Anja Anna Antoine Anton Arjun Astrid Ayumi Barbara Beatriz
Ben Bernd Bianca Bjorn Boris Brian Bruno Camille Carla Carlos Carmen Caroline Catalina Chen
Chiara Chloe Chris Christian Claire Clara Colin Daniel Dario David Deepa Denise Diana Diego
Dmitri Dorothea Edith Eduardo Elena Elif Elias Elin Ella Emil Emily Emma Enzo Erik Ester Eva
Fabian Farah Fatima Felix Femi Filip Fiona Florian Francesca Frank Freya Gabriel Georg Gianni
Grace Greta Hana Hannah Hans Harald Hassan Heike Helen Henrik Hiroshi Hugo Ian Ida Igor Ines
Ingrid Irene Isabel Ivan Jakob James Jan Jana Javier Jens Jessica Joana Johan John Jonas Jorge
Josef Julia Julian Kai Karin Karl Kasia Katharina Kenji Kevin Klara Lars Laura Lea Leon Leonie
Liam Lina Linus Lisa Lorenzo Lotte Luca Lucia Ludwig Luis Lukas Magnus Maja Malik Manuel Mara
Marco Maria Marie Marius Mark Marta Martin Mateo Mathilde Matteo Max Mehmet Mei Mia Michael Mila
Miriam Mohammed Monika Nadia Naomi Nathan Nico Nina Noah Nora Olaf Olga Oliver Omar Oscar Pablo
Paola Patrick Paul Paula Pedro Peter Petra Philipp Pia Pierre Priya Rafael Rahul Ralf Ramona
Raphael Rebecca Renate Ricardo Rita Robert Roman Rosa Ruth Sabine Samir Sandra Sara Sebastian
Selin Simon Sofia Sophie Stefan Susanne Sven Tanja Tara Teresa Theo Thomas Tim Tobias Tom Ugo
Ulrike Umut Ursula Valentina Vera Victor Viktor Wei Werner Wiebke Xavier Yara Yasmin Yusuf Zoe
""")

LAST_NAMES = _split("""
Abbott Adler Aguilar Ahmed Albrecht Alves Andersen Arnold Bauer Baumann Beck Becker Berg Berger
Bianchi Blanc Brandt Braun Brown Bruno Busch Carter Castro Chen Costa Cruz Dahl Dias Dietrich
Dubois Dvorak Eriksson Esposito Fernandes Ferrari Fischer Fontaine Franke Friedrich Fuchs
Garcia Gomes Graf Gruber Gunther Haas Hahn Hansen Hartmann Heinrich Herrmann Hoffmann Holm Horvat
Huber Ito Jakobsen Jansen Jensen Jimenez Johansson Jung Kaiser Kaya Keller Klein Koch Kowalski
Kramer Kruger Kuhn Lang Larsen Laurent Lehmann Lindberg Lopez Lorenz Ludwig Lund Maier Martin
Martinez Mayer Meier Meyer Moreau Moretti Muller Nagy Nakamura Neumann Nielsen Novak Nowak Okafor
Olsen Ortiz Otto Park Patel Pereira Peters Petersen Pohl Popescu Rama Reyes Ricci Richter Rossi
Roth Russo Sala Sanchez Sato Sauer Schaefer Schmid Schmidt Schneider Scholz Schubert Schulz
Schuster Schwarz Silva Simon Singh Sommer Stein Suzuki Svensson Szabo Tanaka Thomsen Torres
Vargas Vogel Wagner Walter Wang Weber Weiss Werner Wilson Winkler Wolf Wouters Yamamoto Yilmaz
Young Zanetti Zhang Ziegler Zimmermann
""")

# city|country|dialling code|latitude|longitude
CITIES = _split("""
Hamburg|DE|49|53.551|9.994 Berlin|DE|49|52.520|13.405 Munich|DE|49|48.137|11.576
Cologne|DE|49|50.938|6.960 Frankfurt|DE|49|50.110|8.682 Stuttgart|DE|49|48.776|9.183
Leipzig|DE|49|51.340|12.375 Dresden|DE|49|51.050|13.738 Hannover|DE|49|52.376|9.732
Bremen|DE|49|53.079|8.802 Nuremberg|DE|49|49.452|11.077 Freiburg|DE|49|47.999|7.842
Kiel|DE|49|54.323|10.123 Rostock|DE|49|54.092|12.099 Vienna|AT|43|48.208|16.374
Graz|AT|43|47.071|15.439 Salzburg|AT|43|47.810|13.055 Linz|AT|43|48.306|14.286
Zurich|CH|41|47.377|8.541 Basel|CH|41|47.560|7.589 Bern|CH|41|46.948|7.447
Geneva|CH|41|46.204|6.143 Amsterdam|NL|31|52.368|4.904 Rotterdam|NL|31|51.924|4.478
Utrecht|NL|31|52.091|5.122 Eindhoven|NL|31|51.441|5.470 Brussels|BE|32|50.850|4.352
Antwerp|BE|32|51.219|4.402 Ghent|BE|32|51.054|3.717 Luxembourg|LU|352|49.611|6.130
Copenhagen|DK|45|55.676|12.568 Aarhus|DK|45|56.162|10.204 Odense|DK|45|55.404|10.402
Stockholm|SE|46|59.329|18.069 Gothenburg|SE|46|57.709|11.974 Malmo|SE|46|55.605|13.004
Uppsala|SE|46|59.859|17.639 Oslo|NO|47|59.914|10.752 Bergen|NO|47|60.391|5.322
Trondheim|NO|47|63.431|10.395 Helsinki|FI|358|60.169|24.938 Tampere|FI|358|61.498|23.761
Paris|FR|33|48.857|2.352 Lyon|FR|33|45.764|4.836 Marseille|FR|33|43.296|5.370
Toulouse|FR|33|43.605|1.444 Nantes|FR|33|47.218|-1.554 Strasbourg|FR|33|48.573|7.752
Lille|FR|33|50.629|3.057 Bordeaux|FR|33|44.838|-0.579 Madrid|ES|34|40.417|-3.704
Barcelona|ES|34|41.385|2.173 Valencia|ES|34|39.470|-0.376 Seville|ES|34|37.389|-5.984
Bilbao|ES|34|43.263|-2.935 Lisbon|PT|351|38.722|-9.139 Porto|PT|351|41.158|-8.629
Milan|IT|39|45.464|9.190 Rome|IT|39|41.903|12.496 Turin|IT|39|45.070|7.687
Bologna|IT|39|44.494|11.343 Florence|IT|39|43.770|11.256 Naples|IT|39|40.852|14.268
Verona|IT|39|45.438|10.992 Warsaw|PL|48|52.230|21.012 Krakow|PL|48|50.065|19.945
Wroclaw|PL|48|51.108|17.039 Gdansk|PL|48|54.352|18.647 Poznan|PL|48|52.406|16.925
Prague|CZ|420|50.076|14.438 Brno|CZ|420|49.195|16.607 Bratislava|SK|421|48.149|17.107
Budapest|HU|36|47.498|19.040 Ljubljana|SI|386|46.057|14.506 Zagreb|HR|385|45.815|15.982
Dublin|IE|353|53.350|-6.260 Cork|IE|353|51.899|-8.476 London|GB|44|51.507|-0.128
Manchester|GB|44|53.481|-2.243 Birmingham|GB|44|52.486|-1.890 Leeds|GB|44|53.801|-1.549
Glasgow|GB|44|55.864|-4.252 Edinburgh|GB|44|55.953|-3.189 Bristol|GB|44|51.455|-2.588
Liverpool|GB|44|53.408|-2.992 Cardiff|GB|44|51.482|-3.179 Toronto|CA|1|43.653|-79.383
Montreal|CA|1|45.502|-73.567 Vancouver|CA|1|49.283|-123.121 Boston|US|1|42.360|-71.058
Chicago|US|1|41.878|-87.630 Denver|US|1|39.739|-104.990 Seattle|US|1|47.606|-122.332
Austin|US|1|30.267|-97.743 Portland|US|1|45.515|-122.679 Minneapolis|US|1|44.978|-93.265
""")

STREETS = _split("""
Maple Oak Elm Cedar Birch Willow Chestnut Linden Poplar Hawthorn Station Church Mill Market
School Park Garden Bridge River Lake Hill Meadow Forest Harbour Castle Abbey Orchard Spring
Victoria Albert King Queen Princess Kings Wellington Nelson Newton Darwin Goethe Schiller Mozart
Beethoven Kant Bach Humboldt Lessing Heine Bismarck Kepler Einstein Curie Pasteur Voltaire
Garibaldi Cavour Verdi Rembrandt Vermeer Erasmus Andersen Ibsen Sibelius Chopin Copernicus
North South East West Central High New Old Long Broad Green Red White Rose Lily Tulip Sunflower
""")

STREET_TYPES = ["Street", "Road", "Avenue", "Lane", "Way", "Drive", "Close", "Place", "Court",
                "Gardens", "Terrace", "Crescent", "Row", "Square", "Straße", "Weg", "Allee",
                "Gasse", "Platz", "straat", "laan", "gatan", "vej", "Rue", "Via", "Calle"]

EMAIL_DOMAINS = _split("""
gmail.com outlook.com hotmail.com yahoo.com icloud.com proton.me web.de gmx.net gmx.de t-online.de
posteo.de mailbox.org free.fr orange.fr libero.it seznam.cz wp.pl onet.pl telia.com online.no
live.co.uk btinternet.com fastmail.com zoho.com aol.com
""")

# make|model|VIN manufacturer code, comma-separated
VEHICLES = _split("""
Toyota|Corolla|JTD, Toyota|Yaris|VNK, Toyota|RAV4|JTM, Toyota|Prius|JTD, Toyota|Auris|SB1,
Volkswagen|Golf|WVW, Volkswagen|Polo|WVW, Volkswagen|Passat|WVW, Volkswagen|Tiguan|WVG,
Volkswagen|Touran|WVG, Volkswagen|ID.3|WVW, Volkswagen|Transporter|WV1, Ford|Focus|WF0,
Ford|Fiesta|WF0, Ford|Kuga|WF0, Ford|Mondeo|WF0, Ford|Transit|WF0, Honda|Civic|SHH,
Honda|Jazz|JHM, Honda|CR-V|SHS, BMW|320d|WBA, BMW|118i|WBA, BMW|X3|WBX, BMW|520d|WBA, BMW|i3|WBY,
Mercedes-Benz|C 200|WDD, Mercedes-Benz|A 180|WDD, Mercedes-Benz|E 220d|WDD,
Mercedes-Benz|Vito|WDF, Audi|A3|WAU, Audi|A4 Avant|WAU, Audi|Q5|WA1, Audi|A6|WAU,
Skoda|Octavia|TMB, Skoda|Fabia|TMB, Skoda|Superb|TMB, Skoda|Kodiaq|TMB, Renault|Clio|VF1,
Renault|Megane|VF1, Renault|Zoe|VF1, Renault|Kangoo|VF1, Peugeot|208|VF3, Peugeot|308|VF3,
Peugeot|3008|VF3, Citroen|C3|VF7, Citroen|Berlingo|VF7, Opel|Astra|W0L, Opel|Corsa|W0L,
Opel|Zafira|W0L, Fiat|500|ZFA, Fiat|Panda|ZFA, Fiat|Tipo|ZFA, Kia|Ceed|U5Y, Kia|Sportage|U5Y,
Kia|Niro|KNA, Hyundai|i30|TMA, Hyundai|Tucson|TMA, Hyundai|Kona|KMH, Mazda|3|JMZ, Mazda|CX-5|JMZ,
Mazda|MX-5|JMZ, Volvo|V60|YV1, Volvo|XC60|YV1, Volvo|V70|YV1, Nissan|Qashqai|SJN,
Nissan|Leaf|SJN, Nissan|Micra|VNV, Seat|Leon|VSS, Seat|Ibiza|VSS, Dacia|Sandero|UU1,
Dacia|Duster|UU1, Tesla|Model 3|5YJ, Tesla|Model Y|7SA, Subaru|Outback|JF1, Suzuki|Swift|TSM,
Mini|Cooper|WMW, Porsche|Macan|WP1, Volkswagen|Up!|WVW
""", ",")

GARAGE_KINDS = ["Autoservice", "Motors", "Garage", "Car Care", "Auto Repair", "Kfz-Werkstatt",
                "Service Centre", "Tyre & Exhaust", "Autohaus", "Mechanics", "Car Clinic",
                "Bodyshop", "Quick Fit", "Autotechnik"]

FUEL_BRANDS = ["Shell", "Aral", "Esso", "BP", "TotalEnergies", "OMV", "Jet", "Agip", "Repsol",
               "Q8", "Circle K", "Tamoil", "Avia", "Texaco", "Orlen", "Star", "Westfalen",
               "Tesco", "Sainsbury's", "Costco", "Raiffeisen", "bft", "Migrol", "Preem"]

PARTS = _split("""
front brake pads|rear brake pads|front brake discs|rear brake discs|engine oil|oil filter|
air filter|cabin filter|fuel filter|spark plugs|glow plugs|timing belt|water pump|coolant|
brake fluid|power steering fluid|gearbox oil|clutch|clutch cable|flywheel|alternator|starter motor|
battery|battery terminals|wiper blades|windscreen washer pump|left headlight bulb|
right headlight bulb|rear fog light|number plate light|indicator relay|horn|exhaust hanger|
rear silencer|catalytic converter|lambda sensor|particulate filter|EGR valve|turbocharger hose|
intercooler pipe|radiator|thermostat|heater core|AC compressor|AC condenser|pollen filter|
front shock absorbers|rear shock absorbers|coil springs|anti-roll bar links|track rod ends|
ball joints|wheel bearing|CV joint boot|drive shaft|tyre valves|spare wheel|jack|
tyre pressure sensor|parking sensor|reversing camera|infotainment screen|key fob battery|
door lock actuator|window regulator|sunroof seal|boot strut|bonnet latch|side mirror glass|
seat belt buckle|airbag sensor|ABS sensor|handbrake cable|brake caliper|brake hoses|
serpentine belt|tensioner pulley|engine mount|gearbox mount|fuel pump|injector|ignition coil|
charging cable|charging port flap|heat pump|12V battery|wheel nuts|locking wheel nut|
roof rails|tow bar|dashcam|floor mats
""", "|")

ADJECTIVES = _split("""
worn noisy cracked leaking loose corroded squeaky brand-new second-hand genuine cheap expensive
aftermarket original refurbished faulty sticky stiff rusty dirty clogged damaged bent scratched
dented overheating vibrating rattling weak dead flat uneven badly-balanced misaligned tired
perished frayed seized cloudy foggy intermittent
""")

PAST_VERBS = _split("""
replaced checked repaired adjusted cleaned renewed tightened topped-up flushed inspected
greased welded resealed re-gassed recharged balanced aligned swapped fitted removed diagnosed
tested ordered quoted recalibrated reset updated polished patched rotated bled
""")

SOUNDS = ["squeak", "rattle", "hum", "grinding noise", "knocking", "whine", "clunk", "hiss",
          "ticking", "whistle", "vibration", "thud", "scraping sound", "droning", "creak"]

SITUATIONS = _split("""
braking at low speed|accelerating uphill|turning the steering wheel fully|driving over cobbles|
cold starting in the morning|idling at traffic lights|reversing out of the driveway|
going over speed bumps|overtaking on the motorway|changing from second to third gear|
the air conditioning is on|the engine is warm|it rains heavily|the boot is fully loaded|
towing the caravan|driving faster than 110 km/h|parking on a slope|the heater fan is on full|
closing the driver's door|pulling away at junctions
""", "|")

PLACES = _split("""
the front left wheel|the rear axle|the engine bay|under the dashboard|the passenger side|
the boot|the exhaust|behind the glovebox|the steering column|the roof|the driver's door|
somewhere under the back seat|the gearbox|the right rear corner|the bonnet
""", "|")

TIME_PHRASES = _split("""
yesterday|last week|this morning|on Monday|on Tuesday evening|last weekend|two days ago|
before the holidays|after the last service|since the winter|on the way home|during the trip to
the coast|at the weekend|in the evening|three weeks ago|right after the inspection|
on the school run|before the MOT|on Friday afternoon|while the kids were in the car|
over Easter|at the end of the month|every few days|only when it is cold|
on the first frosty morning|after the car wash
""", "|")

OUTCOMES = _split("""
it went away after a restart|the garage could not find anything|we drove carefully to the next
exit|the dealer wants to see it again|it turned out to be a loose connector|the warranty covered
it|I have to keep an eye on it|the part is on order|nothing seems to be wrong so far|
a software update fixed it|it cost less than expected|they kept the car overnight|
the roadside assistance came within an hour|it happened twice more since|the insurance will pay
for it|the quote was too high, getting a second one|cleared the fault code myself|
they gave us a courtesy car
""", "|")

WARNING_LIGHTS = ["engine", "ABS", "tyre pressure", "oil pressure", "battery", "airbag",
                  "brake", "coolant temperature", "glow plug", "DPF", "traction control",
                  "service due", "AdBlue", "power steering", "lane assist"]

TASKS = _split("""
check the tyre pressures|book the annual inspection|renew the insurance|top up the washer
fluid|buy new wiper blades|clean out the boot|ask about the recall|pay the road tax|
swap to winter tyres|swap back to summer tyres|get the chip in the windscreen fixed|find the
spare key|update the satnav maps|vacuum the seats|wash the car|send the invoice to the leasing
company|keep the receipts for the tax return|register the new owner|cancel the parking permit|
renew the parking permit|replace the first aid kit|check the oil level
""", "|")

EVENTS = _split("""
the holidays|the trip to Italy|winter|the end of the month|the inspection|the lease ends|
we sell the car|the warranty runs out|the move|Christmas|the summer|the ski trip|next service|
the road trip|the new baby arrives|the job starts
""", "|")

REMARKS = _split("""
receipt in the glovebox|paid by card|company card|split with Tom|invoice emailed|cash, no
receipt|loyalty points collected|discount voucher used|paid through the app|reimbursed by work|
price seemed high|cheapest station around|queue at the pump|car wash included|tyre pressure
checked while there|coffee stop|the pump was slow|only diesel available|self-service only|
card declined first time
""", "|")

CONDITIONS = _split("""
heavy rain most of the way|clear roads|lots of roadworks|a traffic jam near the city|snow on
the pass|strong headwind|air conditioning on all the time|fully loaded with luggage|mostly
motorway|mostly country roads|stop-and-go in town|with the roof box|towing the trailer|
economical driving|a detour because of an accident|night driving|fog in the morning|
hot weather
""", "|")

TRIP_PURPOSES = ["commute", "business", "client visit", "holiday", "shopping", "school run",
                 "weekend trip", "airport", "moving house", "sports club", "family visit",
                 "delivery", "doctor", "dog walk", "conference", "ski trip", "beach",
                 "hardware store", "garden centre", "concert"]

WEATHER = ["sunny", "cloudy", "rain", "heavy rain", "snow", "fog", "windy", "hail", "drizzle",
           "clear", "overcast", "thunderstorm", "icy"]

FUEL_TYPES = ["Super 95", "Super E10", "Super Plus 98", "Diesel", "Premium Diesel", "LPG",
              "AC charging", "DC fast charging"]

PAYMENT = ["card", "cash", "fuel card", "app", "contactless", "company account"]

# code|label|price|hours
SERVICES = """
OIL|Engine oil and filter change|89.90|0.8
INSP|Annual inspection|149.00|1.5
BRKF|Front brake pads and discs|329.00|2.0
BRKR|Rear brake pads|159.00|1.2
TYRE|Tyre change and balancing|59.00|0.7
TYRS|Tyre storage, one season|45.00|0.0
ALGN|Wheel alignment|79.00|1.0
ACSV|Air conditioning service|119.00|1.0
TBLT|Timing belt and water pump|689.00|4.5
BATT|Battery replacement|189.00|0.5
WASH|Interior and exterior cleaning|69.00|1.5
DIAG|Fault diagnosis|95.00|1.0
CLCH|Clutch replacement|1190.00|6.0
EXHS|Exhaust repair|240.00|1.5
GLAS|Windscreen chip repair|79.00|0.5
COOL|Coolant flush|99.00|1.0
SPRK|Spark plugs|129.00|1.0
SUSP|Shock absorbers, front pair|459.00|2.5
SWUP|Software update|0.00|0.5
HVBT|High-voltage battery check|129.00|1.0
""".strip().splitlines()

SERVICE_STATUSES = ["requested", "confirmed", "confirmed", "completed", "completed",
                    "completed", "completed", "cancelled", "no-show"]

CATEGORIES = ["oil", "tyres", "brakes", "inspection", "battery", "exhaust", "suspension",
              "bodywork", "electrics", "air conditioning", "cooling", "transmission",
              "cleaning", "glass", "software", "recall"]

AUDIT_ACTIONS = _split("""
user.login user.login user.login user.logout user.password_change user.settings_update
vehicle.create vehicle.update vehicle.update vehicle.delete fuel_log.create fuel_log.create
fuel_log.create fuel_log.update fuel_log.delete maintenance.create maintenance.update
document.upload document.upload document.delete trip.create trip.create trip.update
appointment.create appointment.update reminder.sent export.csv
""")

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.6045.193 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "MotoVaultPro/3.4.1 (iOS 17.1; iPhone14,5)", "MotoVaultPro/3.4.0 (iOS 16.6; iPhone12,1)",
    "MotoVaultPro/3.3.8 (Android 14; Pixel 7a)", "MotoVaultPro/3.4.1 (Android 13; SM-A546B)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1",
    "python-requests/2.31.0", "okhttp/4.12.0",
]

NOTE_TITLES = ["Service history", "Tyres", "Insurance", "Odd noise", "Road trip", "To do",
               "Warranty", "Recall", "Fuel economy", "Accident report", "Parking", "Inspection",
               "Winter prep", "Selling the car", "Lease return", "Charging", "Paperwork",
               "Spare parts", "Cleaning", "Keys", "Towing", "Roof box", "Dashcam", "Loan car"]


def sql_array(words: list[str]) -> str:
    """A PostgreSQL text[] literal of words (psql passes it as a variable: `:'name'::text[]`)."""
    quoted = ('"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in words)
    return "{" + ",".join(quoted) + "}"


def psql_variables() -> dict[str, str]:
    """Every word list by the name benchmarks/fill_real.sql uses for it."""
    lists = {name.lower(): value for name, value in globals().items()
             if name.isupper() and isinstance(value, list)}
    return {name: sql_array(words) for name, words in lists.items()}
