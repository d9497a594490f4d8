-- Rows for the realistic benchmark database: the tables of scripts/demo_schema.sql (loaded first
-- with scale 0) and tables of its own (profiles, trips, service appointments, an audit log,
-- vehicle notes), as an application of that shape collects them: names, email and postal
-- addresses, phone numbers, free-text notes, timestamps, jsonb details and payloads.
-- Seeded pseudo-random values drawn from the word lists of benchmarks/vocabulary.py, freely
-- combined, so the text is varied and never periodic (a periodic dump compresses again after
-- gzip, which would flatter the naive pipeline); rows are in time order, as an application
-- inserts them.
-- psql variables: :scale in benchmark scale units (fractions allowed; a unit is ~270 MB of
-- plain dump), and every word list as a text[] literal by its lower-case name (:'cities', ...).
SET client_min_messages = warning;
SELECT setseed(0.2718);

CREATE SCHEMA fill;  -- the helpers below, dropped at the end
SET search_path = public, fill;

CREATE FUNCTION fill.pick(words text[]) RETURNS text LANGUAGE sql VOLATILE
RETURN words[1 + floor(random() * cardinality(words))::int];

CREATE FUNCTION fill.num(lo int, hi int) RETURNS int LANGUAGE sql VOLATILE
RETURN lo + floor(random() * (hi - lo + 1))::int;

CREATE FUNCTION fill.n(per_unit int) RETURNS int LANGUAGE sql IMMUTABLE
RETURN greatest(1, round(per_unit * :scale))::int;

CREATE FUNCTION fill.cap(text) RETURNS text LANGUAGE sql IMMUTABLE
RETURN upper(left($1, 1)) || substr($1, 2);

CREATE FUNCTION fill.jitter() RETURNS numeric LANGUAGE sql VOLATILE
RETURN ((random() - 0.5) * 0.2)::numeric;  -- degrees: a few km around a city's centre

CREATE FUNCTION fill.person() RETURNS text LANGUAGE sql VOLATILE
RETURN pick(:'first_names') || ' ' || pick(:'last_names');

CREATE FUNCTION fill.garage() RETURNS text LANGUAGE sql VOLATILE
RETURN CASE WHEN random() < 0.5 THEN split_part(pick(:'cities'), '|', 1) ELSE pick(:'last_names') END
       || ' ' || pick(:'garage_kinds');

CREATE FUNCTION fill.subject() RETURNS text LANGUAGE sql VOLATILE
RETURN CASE WHEN random() < 0.4 THEN pick(:'first_names')
            ELSE pick('{I,We,"The mechanic","The garage","The dealer","My partner","The tyre shop",'
                      '"Roadside assistance","The inspector","Dad"}') END;

CREATE FUNCTION fill.sentence() RETURNS text LANGUAGE sql VOLATILE
RETURN CASE floor(random() * 15)::int
    WHEN 0 THEN format('%s %s the %s %s.', subject(), pick(:'past_verbs'), pick(:'adjectives'),
                       pick(:'parts'))
    WHEN 1 THEN format('Noticed a %s %s from %s when %s.',
                       pick('{faint,loud,metallic,strange,constant,high-pitched,dull,sharp,low}'),
                       pick(:'sounds'), pick(:'places'), pick(:'situations'))
    WHEN 2 THEN format('%s %s at %s, %s km on the clock.', cap(pick(:'parts')),
                       pick(:'past_verbs'), garage(), num(800, 340000))
    WHEN 3 THEN format('Next %s due in %s km or %s months.', lower(split_part(pick(:'services'), '|', 2)),
                       num(2, 40) * 500, num(1, 24))
    WHEN 4 THEN format('Paid %s EUR, %s.', round((5 + random() * random() * 1500)::numeric, 2),
                       pick(:'remarks'))
    WHEN 5 THEN format('%s at %s says the %s %s %s.', pick(:'first_names'), garage(), pick(:'parts'),
                       pick('{"should be replaced soon","look fine for now","will last another year",'
                            '"need watching","are close to the limit","were done under warranty"}'),
                       pick(:'time_phrases'))
    WHEN 6 THEN format('Drove from %s to %s %s, %s.', split_part(pick(:'cities'), '|', 1),
                       split_part(pick(:'cities'), '|', 1), pick(:'time_phrases'), pick(:'conditions'))
    WHEN 7 THEN format('The %s warning light came on %s; %s.', pick(:'warning_lights'),
                       pick(:'time_phrases'), pick(:'outcomes'))
    WHEN 8 THEN format('Booked the %s at %s for %s %s.', lower(split_part(pick(:'services'), '|', 2)),
                       garage(), to_char(date '2024-01-01' + num(0, 700), 'FMDay FMDD FMMonth'),
                       format('at %s:%s', num(7, 17), pick('{00,15,30,45}')))
    WHEN 9 THEN format('Fuel consumption was %s l/100km, %s.', round((3.8 + random() * 7)::numeric, 1),
                       pick(:'conditions'))
    WHEN 10 THEN format('Called %s %s about the %s; %s.',
                        pick('{"the dealer","the insurer","the leasing company","roadside assistance",'
                             '"the tyre shop","the body shop"}'), pick(:'time_phrases'),
                        pick('{recall,"warranty claim","scratch on the bumper",invoice,quote,'
                             '"dent in the door","parking ticket","spare key"}'), pick(:'outcomes'))
    WHEN 11 THEN format('Remember to %s before %s.', pick(:'tasks'), pick(:'events'))
    WHEN 12 THEN format('The %s %s %s, so %s %s it %s.', pick(:'parts'),
                        pick('{was,seemed,looked,felt,sounded}'), pick(:'adjectives'),
                        lower(subject()), pick(:'past_verbs'), pick(:'time_phrases'))
    WHEN 13 THEN format('Is the %s supposed to %s when %s?', pick(:'parts'),
                        pick('{"make that noise","feel like that","smell like that","be that hot",'
                             '"move that much","look like that"}'), pick(:'situations'))
    ELSE format('%s, %s %s the %s at %s.', cap(pick(:'time_phrases')), lower(subject()),
                pick(:'past_verbs'), pick(:'parts'), garage())
END;

CREATE FUNCTION fill.paragraph(lo int, hi int) RETURNS text LANGUAGE sql VOLATILE
RETURN (SELECT string_agg(sentence(), ' ') FROM generate_series(1, num(lo, hi)));

-- a time in [since, since + span), to the microsecond as now() records it
CREATE FUNCTION fill.moment(since date, span interval) RETURNS timestamptz LANGUAGE sql VOLATILE
RETURN since + random() * extract(epoch FROM span) * interval '1 second';

-- users: ids in sign-up order; an address taken twice gets a plus suffix (the column is unique)
INSERT INTO users (email, name, created_at)
SELECT CASE WHEN row_number() OVER (PARTITION BY email ORDER BY g) = 1 THEN email
            ELSE replace(email, '@', '+' || g || '@') END, name, created_at
FROM (SELECT g, first || ' ' || last AS name,
             lower(CASE num(0, 4) WHEN 0 THEN first || '.' || last
                                  WHEN 1 THEN left(first, 1) || last
                                  WHEN 2 THEN first || '_' || last || num(1, 99)
                                  WHEN 3 THEN first || num(1950, 2006)
                                  ELSE last || '.' || first END)
                 || '@' || pick(:'email_domains') AS email,
             moment('2016-01-01', interval '9 years') AS created_at
      FROM (SELECT g, pick(:'first_names') AS first, pick(:'last_names') AS last
            FROM generate_series(1, n(30000)) AS g) AS names) AS u
ORDER BY created_at;

CREATE TABLE user_profiles (
    user_id     bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    phone       text,
    street      text,
    postal_code text,
    city        text,
    country     text,
    birth_date  date,
    preferences jsonb NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL
);

INSERT INTO user_profiles
SELECT id,
       CASE WHEN random() < 0.85 THEN format('+%s %s %s', split_part(c, '|', 3), num(151, 179),
                                             num(1000000, 9999999)) END,
       CASE WHEN random() < 0.5 THEN format('%s %s %s', num(1, 240), pick(:'streets'), pick(:'street_types'))
            ELSE format('%s %s %s', pick(:'streets'), pick(:'street_types'), num(1, 240)) END,
       lpad(num(1000, 99999)::text, 5, '0'), split_part(c, '|', 1), split_part(c, '|', 2),
       CASE WHEN random() < 0.7 THEN date '1945-01-01' + num(0, 22000) END,
       jsonb_build_object(
           'units', CASE WHEN split_part(c, '|', 2) IN ('US', 'GB') THEN 'imperial' ELSE 'metric' END,
           'currency', CASE split_part(c, '|', 2) WHEN 'US' THEN 'USD' WHEN 'GB' THEN 'GBP'
                                                 WHEN 'CH' THEN 'CHF' WHEN 'CA' THEN 'CAD'
                                                 ELSE 'EUR' END,
           'language', CASE WHEN split_part(c, '|', 2) IN ('GB', 'IE', 'US', 'CA') THEN 'en'
                           WHEN split_part(c, '|', 2) IN ('AT', 'CH', 'LU') THEN 'de'
                           ELSE lower(split_part(c, '|', 2)) END, 'theme', pick('{light,dark,system}'),
           'newsletter', random() < 0.3,
           'reminders', jsonb_build_object('service', random() < 0.8,
                                           'inspection_days_before', pick('{7,14,30}')::int,
                                           'channels', CASE num(0, 2) WHEN 0 THEN '["email"]'::jsonb
                                                            WHEN 1 THEN '["push"]'::jsonb
                                                            ELSE '["email", "push"]'::jsonb END),
           'dashboard', jsonb_build_object('show_costs', random() < 0.7,
                                           'period', pick('{month,quarter,year,all}'))),
       created_at + random() * interval '2 years'
FROM (SELECT id, created_at, pick(:'cities') AS c FROM users) AS u;

INSERT INTO vehicles (user_id, make, model, year, vin, odometer_km)
SELECT user_id, split_part(v, '|', 1), split_part(v, '|', 2), year,
       split_part(v, '|', 3) || upper(substr(md5(random()::text), 1, 6)) || num(0, 9)
           || substr('WXY123456789ABCDEFGHJKLMNPRS', year - 1997, 1) || pick('{A,B,C,D,G,K,M,N,P,U,Z}')
           || lpad(num(0, 999999)::text, 6, '0'),
       num(500, 340000)
FROM (SELECT num(1, n(30000)) AS user_id, pick(:'vehicles') AS v, num(1998, 2025) AS year
      FROM generate_series(1, n(45000))) AS x;

INSERT INTO fuel_logs (vehicle_id, filled_at, litres, price_total, odometer_km, notes)
SELECT vehicle, filled, litres, round(litres * price, 2), odo, note
FROM (SELECT num(1, n(45000)) AS vehicle,
             date_trunc('minute', moment('2016-01-01', interval '9 years')) AS filled,  -- as typed in
             round((8 + random() * 62)::numeric, 2) AS litres,
             (1.30 + random() * 0.85)::numeric AS price, num(1000, 350000) AS odo,
             CASE floor(random() * 10)::int
                 WHEN 0 THEN pick(:'fuel_brands') || ' ' || split_part(pick(:'cities'), '|', 1)
                 WHEN 1 THEN pick(:'remarks')
                 WHEN 2 THEN sentence()
             END AS note
      FROM generate_series(1, n(650000))) AS f
ORDER BY filled;

INSERT INTO maintenance_records (vehicle_id, performed_at, category, description, cost)
SELECT vehicle, performed, category, description, cost
FROM (SELECT num(1, n(45000)) AS vehicle, date '2014-01-01' + num(0, 4300) AS performed,
             pick(:'categories') AS category, paragraph(1, 3) AS description,
             round((15 + random() * random() * 2500)::numeric, 2) AS cost
      FROM generate_series(1, n(150000))) AS m
ORDER BY performed;

CREATE TABLE trips (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vehicle_id  bigint NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL,
    distance_km numeric(8, 1) NOT NULL,
    purpose     text,
    details     jsonb NOT NULL
);

INSERT INTO trips (vehicle_id, started_at, ended_at, distance_km, purpose, details)
SELECT vehicle, started, started + km / speed * interval '1 hour', km, purpose,
       jsonb_strip_nulls(jsonb_build_object(
           'from', jsonb_build_object('city', split_part(a, '|', 1),
                                      'lat', round(split_part(a, '|', 4)::numeric + jitter(), 5),
                                      'lon', round(split_part(a, '|', 5)::numeric + jitter(), 5)),
           'to', jsonb_build_object('city', split_part(b, '|', 1),
                                    'lat', round(split_part(b, '|', 4)::numeric + jitter(), 5),
                                    'lon', round(split_part(b, '|', 5)::numeric + jitter(), 5)),
           'route', CASE WHEN a <> b THEN pick('{A,E,M,B,I}') || num(1, 99) END,
           'stops', num(0, 3), 'passengers', num(0, 4), 'weather', pick(:'weather'),
           'avg_speed_kmh', round(speed), 'fuel_used_l', round((km * (4 + random() * 5) / 100)::numeric, 1),
           'toll_eur', CASE WHEN a <> b AND random() < 0.3 THEN round((2 + random() * 40)::numeric, 2) END,
           'tags', CASE WHEN random() < 0.4 THEN jsonb_build_array(pick(:'trip_purposes'), pick(:'weather'))
                        ELSE '[]'::jsonb END,
           'note', CASE WHEN random() < 0.25 THEN sentence() END))
FROM (SELECT vehicle, started, a, b, purpose,
             round((CASE WHEN a = b THEN 2 + random() * 40 ELSE 40 + random() * 860 END)::numeric, 1) AS km,
             CASE WHEN a = b THEN 20 + random() * 25 ELSE 60 + random() * 55 END AS speed
      FROM (SELECT num(1, n(45000)) AS vehicle, date_trunc('second', moment('2019-01-01', interval '6 years')) AS started,
                   c AS a, CASE WHEN random() < 0.7 THEN c ELSE pick(:'cities') END AS b,
                   CASE WHEN random() < 0.8 THEN pick(:'trip_purposes') END AS purpose
            FROM (SELECT pick(:'cities') AS c FROM generate_series(1, n(190000))) AS o) AS p) AS t
ORDER BY started;

CREATE TABLE service_appointments (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vehicle_id    bigint NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    garage        text NOT NULL,
    scheduled_for timestamptz NOT NULL,
    status        text NOT NULL,
    details       jsonb NOT NULL,
    customer_note text,
    created_at    timestamptz NOT NULL
);

INSERT INTO service_appointments (vehicle_id, garage, scheduled_for, status, details,
                                  customer_note, created_at)
SELECT vehicle, garage(), created + num(1, 40) * interval '1 day' + num(14, 34) * interval '30 minutes',
       pick(:'service_statuses'),
       jsonb_strip_nulls(jsonb_build_object(
           'services', (SELECT jsonb_agg(jsonb_build_object(
                                   'code', split_part(s, '|', 1), 'label', split_part(s, '|', 2),
                                   'price', split_part(s, '|', 3)::numeric,
                                   'hours', split_part(s, '|', 4)::numeric))
                        FROM (SELECT pick(:'services') AS s FROM generate_series(1, num(1, 4) + 0 * g)) AS picked),
           'mechanic', person(), 'courtesy_car', random() < 0.2, 'parts_ordered', random() < 0.35,
           'quote_eur', round((40 + random() * random() * 2000)::numeric, 2),
           'contact', jsonb_build_object('by', pick('{sms,email,phone}'),
                                         'reminder_sent_at', created + num(1, 5) * interval '1 day'),
           'odometer_km', num(800, 340000))),
       CASE WHEN random() < 0.6 THEN paragraph(1, 3) END, created
FROM (SELECT g, num(1, n(45000)) AS vehicle, moment('2018-01-01', interval '7 years') AS created
      FROM generate_series(1, n(55000)) AS g) AS a
ORDER BY created;

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    actor_id    bigint,
    action      text NOT NULL,
    entity      text NOT NULL,
    entity_id   bigint,
    ip          inet,
    user_agent  text,
    payload     jsonb NOT NULL
);

-- one entry after another (occurred_at grows with id), microseconds as now() writes them
INSERT INTO audit_log (occurred_at, actor_id, action, entity, entity_id, ip, user_agent, payload)
SELECT occurred, actor, action, split_part(action, '.', 1), entity_id,
       CASE WHEN random() < 0.85 THEN format('%s.%s.%s.%s', num(2, 223), num(0, 255), num(0, 255), num(1, 254))
            ELSE format('2a02:%s:%s::%s', to_hex(num(4096, 65535)), to_hex(num(1, 65535)), to_hex(num(1, 65535)))
       END::inet,
       pick(:'user_agents'),
       jsonb_build_object('request_id', md5(random()::text)::uuid, 'source', pick('{web,web,ios,android,api}'))
       || CASE split_part(action, '.', 1)
              WHEN 'user' THEN jsonb_build_object('method', pick('{password,password,google,apple,passkey}'),
                                                  'mfa', random() < 0.4, 'remember_me', random() < 0.6)
              WHEN 'fuel_log' THEN jsonb_build_object('after', jsonb_build_object(
                  'litres', round((8 + random() * 62)::numeric, 2),
                  'price_total', round((15 + random() * 120)::numeric, 2),
                  'odometer_km', num(1000, 350000),
                  'station', pick(:'fuel_brands') || ' ' || split_part(pick(:'cities'), '|', 1)))
              WHEN 'vehicle' THEN jsonb_build_object('changes', jsonb_build_object(
                  'odometer_km', jsonb_build_object('old', odo, 'new', odo + num(10, 3000))))
              WHEN 'document' THEN jsonb_build_object(
                  'file_name', format('%s_%s.%s', pick('{receipt,invoice,photo,scan,contract,IMG}'),
                                      num(1000, 99999), pick('{pdf,jpg,jpeg,png,heic,docx}')),
                  'size_bytes', num(20000, 4000000),
                  'content_type', pick('{application/pdf,image/jpeg,image/png,image/heic}'))
              ELSE jsonb_build_object('changes', jsonb_build_object(
                  'notes', jsonb_build_object('old', NULL, 'new', sentence()),
                  'updated_fields', jsonb_build_array(pick('{notes,date,cost,status,garage,odometer_km}'))))
          END
FROM (SELECT timestamptz '2022-01-01' + (g + random()) * (interval '3 years' / n(220000)) AS occurred,
             num(1, n(30000)) AS actor, pick(:'audit_actions') AS action, num(1, 5000000) AS entity_id,
             num(1000, 340000) AS odo
      FROM generate_series(1, n(220000)) AS g) AS e;

CREATE TABLE vehicle_notes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vehicle_id bigint NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL
);

INSERT INTO vehicle_notes (vehicle_id, created_at, title, body)
SELECT vehicle, created, title, paragraph(2, 10)
FROM (SELECT num(1, n(45000)) AS vehicle, moment('2017-01-01', interval '8 years') AS created,
             pick(:'note_titles') AS title
      FROM generate_series(1, n(40000))) AS v
ORDER BY created;

CREATE INDEX trips_vehicle_idx ON trips (vehicle_id, started_at);
CREATE INDEX appointments_vehicle_idx ON service_appointments (vehicle_id, scheduled_for);
CREATE INDEX audit_log_occurred_idx ON audit_log (occurred_at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, occurred_at);
CREATE INDEX vehicle_notes_vehicle_idx ON vehicle_notes (vehicle_id, created_at);

DROP SCHEMA fill CASCADE;
RESET search_path;
